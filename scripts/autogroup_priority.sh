#!/usr/bin/env bash
# Give one process tree (the training run) the CPU on a shared machine.
#
# Linux autogroups (sched_autogroup_enabled=1) schedule each session as one
# group, so `nice` only ranks processes *inside* a session: a nice-19 test run
# started from another shell still takes an equal share of the 2 cores away from
# the training. This loop sets the autogroup nice of every other session to 19
# and the training's session to -5, every 10 s, while the training runs.
#
#   scripts/autogroup_priority.sh PID     (PID: the training process)
set -u
pid=${1:?usage: autogroup_priority.sh TRAINING_PID}
[ -r /proc/sys/kernel/sched_autogroup_enabled ] && [ "$(cat /proc/sys/kernel/sched_autogroup_enabled)" = 1 ] || { echo "autogroups are off: plain nice is enough" >&2; exit 0; }
mine=$(cut -d' ' -f1 /proc/"$pid"/autogroup)
while kill -0 "$pid" 2>/dev/null; do
  echo -5 > /proc/"$pid"/autogroup 2>/dev/null
  for f in /proc/[0-9]*/autogroup; do
    g=$(cut -d' ' -f1 "$f" 2>/dev/null) || continue
    [ -n "$g" ] && [ "$g" != "$mine" ] && echo 19 > "$f" 2>/dev/null
  done
  sleep 10
done
