"""The agent side: runs tasks on the instance (stdlib only, plus the pure `cloudassist.domain`).

* `output.OutputBuffer`: bounded head + tail capture of a task's output, cut on UTF-8 boundaries;
* `proctree`: process trees from /proc: find, freeze and kill a task's processes, subreaper, reaping;
* `executor.Execution`: runs one `TaskSpec` as `/bin/sh <file>` and returns an `Outcome`.
"""
