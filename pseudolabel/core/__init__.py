"""The ground floor: the package's basic types and rules, imported by everything above and
importing nothing of the package outside ``core``: errors, the label vocabulary (``classes``),
immutable dataset records, what a stage returns (``results``), configurations (``config``),
label-map arithmetic (``labels``), progress lines, and the paths under the output root
(``output_root``)."""
