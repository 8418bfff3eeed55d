"""The agent: runs on each instance, pulls tasks from the server, runs them and reports what happened.

It imports only the standard library (plus the pure `cloudassist.domain`), never the server's stack.
Running one task is three modules:

* `executor`: `Execution(TaskSpec, OutputBuffer).run()` runs one script as `/bin/sh <file>` (as the
  task's user, in its own session) and returns an `Outcome`; `stop()` kills it per TerminationMode;
* `output`: `OutputBuffer`, a bounded head + tail capture cut on UTF-8 boundaries, and `PipeReader`;
* `proctree`: a task's process tree from /proc: find it, freeze and kill it, subreaper, reaping.
"""
