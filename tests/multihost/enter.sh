#!/bin/sh
# tests/multihost/enter.sh HOST COMMAND...: the remote launcher mpirun uses for the namespace
# hosts (its plm_rsh_agent, in place of ssh). HOST is 10.77.0.K, the host h(K-1) of the run
# named by $WFMH_PREFIX; COMMAND (the orted line, as ssh would get it) runs there under that
# host's name, in its own network namespace.
host=$1
shift
i=$((${host##*.} - 1))
name="$WFMH_PREFIX-h$i"
exec nsenter --net="/run/netns/$name" unshare --uts sh -c "hostname $name && exec $*"
