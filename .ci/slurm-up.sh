#!/usr/bin/env bash
# A one-node Slurm cluster on localhost, with accounting, and no systemd:
# munged, MariaDB, slurmdbd, slurmctld and slurmd are started by this script.
# submitit reads job states through `sacct`, which needs the accounting
# daemon (without it a cancelled job's result() waits forever).
# Idempotent: packages are installed only if missing, daemons started only if down.
# Needs root (apt-get, /etc/slurm). Prints SLURM_CONF's value at the end.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "slurm-up: not root; skipping the local Slurm cluster (the Slurm tests will be skipped)" >&2
  exit 0
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm slurmdbd munge mariadb-server mariadb-client >/dev/null
fi

CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /var/run/mysqld

# munge: a key, then the daemon as the munge user.
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
chmod 711 /run/munge
if ! pgrep -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged
fi

# MariaDB on 127.0.0.1 (a socket path the clients agree on is not needed then).
chown -R mysql:mysql /var/lib/mysql /var/run/mysqld
if [ ! -d /var/lib/mysql/mysql ]; then
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
fi
if ! pgrep -x mariadbd >/dev/null; then
  (mariadbd --user=mysql --datadir=/var/lib/mysql --bind-address=127.0.0.1 --port=3306 \
     --socket=/var/run/mysqld/mysqld.sock >/var/log/slurm/mariadb.log 2>&1 &)
  for _ in $(seq 100); do mariadb -uroot -e "select 1" >/dev/null 2>&1 && break; sleep 0.1; done
fi
mariadb -uroot <<'SQL'
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL

cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdAddr=127.0.0.1
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile=/run/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
CONF
chmod 600 /etc/slurm/slurmdbd.conf

cat > /etc/slurm/slurm.conf.new <<CONF
ClusterName=smslab
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it may start again (120 by default): a preempted
# job in the tests should resume within seconds.
AuthInfo=cred_expire=10
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/none
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=1,bf_interval=1
MinJobAge=300
KillWait=30
NodeName=localhost NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM_MB} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=/etc/slurm/slurm.conf
if ! cmp -s /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf; then
  mv /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf
  # Daemons already up read the old file (cred_expire is read only at start): restart them.
  pkill -x slurmctld || true
  pkill -x slurmd || true
  for _ in $(seq 100); do pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break; sleep 0.1; done
else
  rm /etc/slurm/slurm.conf.new
fi

if ! pgrep -x slurmdbd >/dev/null; then
  slurmdbd
  for _ in $(seq 100); do sacctmgr -n show cluster >/dev/null 2>&1 && break; sleep 0.1; done
fi
sacctmgr -i -Q add cluster smslab >/dev/null 2>&1 || true
if ! pgrep -x slurmctld >/dev/null; then
  slurmctld
fi
if ! pgrep -x slurmd >/dev/null; then
  slurmd
fi
for _ in $(seq 150); do
  if sinfo -h -o %T 2>/dev/null | grep -q idle; then
    echo "slurm-up: one-node cluster ready (SLURM_CONF=$SLURM_CONF)" >&2
    exit 0
  fi
  scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
  sleep 0.2
done
echo "slurm-up: the node did not become idle; see /var/log/slurm/*.log" >&2
sinfo >&2 || true
exit 1
