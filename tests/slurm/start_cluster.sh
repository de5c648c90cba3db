#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine, for tests/test_slurm.py (or by hand).
#
#   tests/slurm/start_cluster.sh
#   sinfo; squeue; sbatch ...
#   tests/slurm/stop_cluster.sh
#
# Needs root. Installs slurmctld, slurmd, slurm-client and munge with apt-get when they are
# missing (Debian/Ubuntu), writes slurm.conf and gres.conf to /etc/slurm (where every SLURM
# command looks, including the srun that the executor plugin runs inside each job, which drops
# SLURM_CONF from its environment), keeps state, logs and pid files in $LOOD_SLURM_DIR, and starts
# munged (as the munge user), slurmctld and slurmd without systemd. The node has this machine's
# CPUs and memory (slurmd -C), two fake GPUs (GRES backed by /dev/null and /dev/zero: jobs see
# CUDA_VISIBLE_DEVICES but no device) and sits in two partitions, `cpu` (default) and `gpu`.
# No accounting database: sacct cannot see jobs, so use the squeue status command. Exits when
# sinfo shows the node idle. Refuses to overwrite a slurm.conf it did not write.
#
# Environment: LOOD_SLURM_DIR (default /tmp/lood-slurm), LOOD_SLURM_CTLD_PORT and
# LOOD_SLURM_SLURMD_PORT (6817, 6818), LOOD_SLURM_MIN_JOB_AGE (seconds a finished job stays
# visible to squeue and scontrol; 300, SLURM's default).
set -euo pipefail

DIR=${LOOD_SLURM_DIR:-/tmp/lood-slurm}
CTLD_PORT=${LOOD_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${LOOD_SLURM_SLURMD_PORT:-6818}
# Seconds a finished job stays visible to squeue / scontrol show job. SLURM's default is 300;
# the executor plugin's squeue status needs >= 3 x its first status interval.
MIN_JOB_AGE=${LOOD_SLURM_MIN_JOB_AGE:-300}
ETC=/etc/slurm
CONF="$ETC/slurm.conf"
MARK="# single-node test cluster written by tests/slurm/start_cluster.sh"

log() { echo "[start_cluster] $*" >&2; }
alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [[ $(id -u) -ne 0 ]]; then
    log "needs root (slurmd runs jobs as their users; munged and apt-get need root)"
    exit 2
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    if ! command -v apt-get >/dev/null; then
        log "slurmctld/slurmd/sbatch/munged missing and no apt-get to install them"
        exit 3
    fi
    log "installing slurmctld slurmd slurm-client munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

if [[ -e $CONF ]] && ! grep -qxF "$MARK" "$CONF"; then
    log "$CONF exists and was not written by this script: not overwriting a real cluster's setup"
    exit 6
fi
mkdir -p "$DIR/state" "$DIR/spool" "$ETC"
chmod 755 "$DIR"

# --- munge: slurm's authentication. munged refuses to run as root.
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    install -d -o munge -g munge -m 700 /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 755 /run/munge
install -d -o munge -g munge -m 711 /var/lib/munge
install -d -o munge -g munge -m 700 /var/log/munge
if alive /run/munge/munged.pid; then
    log "munged already running (pid $(cat /run/munge/munged.pid)); not ours to stop"
else
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do alive /run/munge/munged.pid && break; sleep 0.1; done
    alive /run/munge/munged.pid || { log "munged did not start"; exit 4; }
    cp /run/munge/munged.pid "$DIR/munged.pid"  # started here: stop_cluster.sh stops it
fi

# --- slurm.conf for one node with its real CPUs and memory.
read -r NODE_LINE < <(slurmd -C | head -n 1)
NODE=$(sed -E 's/^NodeName=([^ ]+).*/\1/' <<<"$NODE_LINE")
CPUS=$(sed -E 's/.* CPUs=([0-9]+).*/\1/' <<<"$NODE_LINE")
MEM=$(sed -E 's/.* RealMemory=([0-9]+).*/\1/' <<<"$NODE_LINE")
cat >"$CONF" <<CONF
$MARK
ClusterName=loodtest
SlurmctldHost=$NODE
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=$MIN_JOB_AGE
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=30
$NODE_LINE Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
CONF
cat >"$ETC/gres.conf" <<GRES
AutoDetect=off
NodeName=$NODE Name=gpu File=/dev/null
NodeName=$NODE Name=gpu File=/dev/zero
GRES

started() {  # started <daemon>: wait for its pid file (it forks into the background)
    for _ in $(seq 100); do alive "$DIR/$1.pid" && return 0; sleep 0.1; done
    log "$1 did not start; the end of $DIR/$1.log:"
    tail -n 5 "$DIR/$1.log" >&2 || true
    exit 5
}
if alive "$DIR/slurmctld.pid"; then
    log "slurmctld already running (pid $(cat "$DIR/slurmctld.pid")): rereading $CONF"
    scontrol reconfigure
else
    rm -rf "${DIR:?}/state/"* "$DIR/slurmctld.pid"
    slurmctld -f "$CONF"
    started slurmctld
fi
if alive "$DIR/slurmd.pid"; then
    log "slurmd already running (pid $(cat "$DIR/slurmd.pid"))"
else
    rm -f "$DIR/slurmd.pid"
    slurmd -f "$CONF"
    started slurmd
fi

for _ in $(seq 120); do
    for daemon in slurmctld slurmd; do
        if ! alive "$DIR/$daemon.pid"; then
            log "$daemon exited; the end of $DIR/$daemon.log:"
            tail -n 5 "$DIR/$daemon.log" >&2 || true
            exit 5
        fi
    done
    state=$(sinfo -h -N -o %t 2>/dev/null | head -n 1 || true)
    if [[ $state == idle ]]; then
        log "node $NODE idle: $CPUS CPUs, $MEM MB, 2 fake GPUs; partitions cpu, gpu"
        exit 0
    fi
    sleep 0.5
done
log "node did not become idle (state: ${state:-none}); see $DIR/slurmctld.log, $DIR/slurmd.log"
sinfo -N -l >&2 || true
exit 5
