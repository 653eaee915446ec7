"""What commands do, without the command line: recipes (``recipe``), the demo (``demo``), the
output root's listing and cleaning (``cache``) and detector training (``train_detector``). The CLI
parses options and calls these; they call the runner, exports, evaluation and the report."""
