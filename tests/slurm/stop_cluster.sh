#!/usr/bin/env bash
# Stop what tests/slurm/start_cluster.sh started: slurmd, slurmctld and (if it started it)
# munged, each by the PID in its pid file. Leaves the configuration and logs in place.
set -uo pipefail

DIR=${LOOD_SLURM_DIR:-/tmp/lood-slurm}

stop() {  # stop <name> <pidfile>
    local name=$1 pidfile=$2 pid
    [[ -s $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "[stop_cluster] $name (pid $pid) ignored SIGTERM, sending SIGKILL" >&2
            kill -KILL "$pid"
        fi
    fi
    rm -f "$pidfile"
}

# jobs first, so that no job step outlives the daemons
if [[ -s $DIR/slurmctld.pid ]] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
    ids=$(squeue -h -o %i 2>/dev/null)
    [[ -n $ids ]] && scancel $ids
    for _ in $(seq 50); do [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break; sleep 0.2; done
fi
stop slurmd "$DIR/slurmd.pid"
stop slurmctld "$DIR/slurmctld.pid"
stop munged "$DIR/munged.pid"  # only present when start_cluster.sh started munged
