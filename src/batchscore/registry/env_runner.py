"""Runs a user's scoring script inside its own virtualenv, for a batchscore worker.

Started as a plain file by the environment's Python (``python env_runner.py IN OUT SCRIPT
CODE [ARGS...]``): it imports nothing of batchscore, only the standard library, and pandas
when ``run()`` returns a DataFrame. ``IN`` and ``OUT`` are pipe file descriptors carrying
length-prefixed JSON messages; stdout and stderr stay the worker's (its logs).

Messages: the first answer says whether ``init()`` worked; then ``{"op": "run", "items":
[paths], "index": n}`` (or, for a tabular mini-batch, ``"frame": PARQUET`` and
``"partition": {column: value}`` instead of ``items``: a DataFrame, read with the
environment's pandas and pyarrow) is answered ``{"ok": true, "returned": n, "text":
"..."}`` (the rows as batchscore's ``append_row`` writes them) or ``{"ok": false,
"error": traceback, "contract": bool}``; ``{"op": "shutdown"}`` calls ``shutdown()`` and ends.
"""

import importlib.util
import inspect
import json
import os
import struct
import sys
import traceback


class MiniBatchContext:
    def __init__(self, index, partition=None):
        self.minibatch_index = index
        self.partition_key_value = dict(partition or {})
        self.dataset = None


class NeedsPandas(Exception):
    """A DataFrame mini-batch in an environment without pandas (and pyarrow)."""


def _mini_batch(message):
    """The paths, or the DataFrame read from the Parquet file the worker wrote."""
    if "frame" not in message:
        return message["items"]
    try:
        import pandas
    except ImportError:
        raise NeedsPandas("this job's mini-batches are DataFrames (input_format csv or "
                          "parquet): its environment needs pandas and pyarrow (add them to "
                          "the conda file's pip section)") from None
    try:
        return pandas.read_parquet(message["frame"])
    except ImportError as exc:
        raise NeedsPandas(f"this job's mini-batches are DataFrames: its environment needs "
                          f"pyarrow beside pandas to read them ({exc})") from None


def _send(fd, message):
    data = json.dumps(message).encode()
    os.write(fd, struct.pack(">I", len(data)) + data)


def _read(fd, n):
    data = b""
    while len(data) < n:
        part = os.read(fd, n - len(data))
        if not part:
            return None
        data += part
    return data


def _receive(fd):
    head = _read(fd, 4)
    if head is None:
        return None
    (size,) = struct.unpack(">I", head)
    body = _read(fd, size)
    return None if body is None else json.loads(body)


def _format(result):
    if isinstance(result, list):
        return len(result), "".join(f"{item}\n" for item in result)
    if type(result).__name__ == "DataFrame" and hasattr(result, "to_csv"):
        text = result.to_csv(sep=" ", header=False, index=False, lineterminator="\n")
        return len(result), text
    raise TypeError(f"run() returned a {type(result).__module__}.{type(result).__qualname__}; "
                    "it must return a list (one item per input) or a pandas DataFrame")


def main(argv):
    fd_in, fd_out, script, code = int(argv[1]), int(argv[2]), argv[3], argv[4]
    sys.argv = [script, *argv[5:]]
    sys.path.insert(0, code)
    try:
        spec = importlib.util.spec_from_file_location("batchscore_user_script", script)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        if callable(getattr(module, "init", None)):
            module.init()
        run = module.run
        params = [p for p in inspect.signature(run).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        takes_context = len(params) >= 2
    except BaseException:
        _send(fd_out, {"ok": False, "error": traceback.format_exc()})
        return 1
    _send(fd_out, {"ok": True, "python": sys.executable})
    while True:
        message = _receive(fd_in)
        if message is None or message.get("op") == "shutdown":
            if callable(getattr(module, "shutdown", None)):
                module.shutdown()
            if message is not None:
                _send(fd_out, {"ok": True})
            return 0
        try:
            items = _mini_batch(message)
        except NeedsPandas as exc:
            _send(fd_out, {"ok": False, "error": str(exc), "contract": True})
            continue
        try:
            context = MiniBatchContext(message["index"], message.get("partition"))
            result = run(items, context) if takes_context else run(items)
        except BaseException:
            _send(fd_out, {"ok": False, "error": traceback.format_exc(), "contract": False})
            continue
        try:
            returned, text = _format(result)
        except TypeError as exc:
            _send(fd_out, {"ok": False, "error": str(exc), "contract": True})
            continue
        _send(fd_out, {"ok": True, "returned": returned, "text": text})


if __name__ == "__main__":
    sys.exit(main(sys.argv))
