"""The paper's reproduction: its studies (`reproduce`, `budget`), the checkpoints shipped for the notebooks
(`shipped`) and its figures. It uses every other layer; nothing outside the command line and the notebooks uses it."""
