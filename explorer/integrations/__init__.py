"""Adapters that report a training framework's steps to an `explorer.live.monitor.Monitor` (the optional extra
``integrations``): `explorer.integrations.lightning` for PyTorch Lightning, `explorer.integrations.huggingface` for
the Hugging Face ``transformers.Trainer``. Each one is a callback of its framework that calls ``monitor.step`` and
ends the framework's loop when Stop is pressed in the views."""
