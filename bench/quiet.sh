# bench/quiet.sh (sourced): timings on 2 cores are spoiled by any other load, so wait up to a
# minute for an idle machine and say so when it never was.
busy() {  # percent of CPU time not idle over one second
  read -r _ u1 n1 s1 i1 w1 q1 sq1 _ < /proc/stat; sleep 1; read -r _ u2 n2 s2 i2 w2 q2 sq2 _ < /proc/stat
  local tot=$(( (u2+n2+s2+i2+w2+q2+sq2) - (u1+n1+s1+i1+w1+q1+sq1) )) idle=$(( i2 - i1 ))
  echo $(( 100 * (tot - idle) / (tot > 0 ? tot : 1) ))
}
wait_for_quiet() {
  local b=100
  for _ in $(seq 1 60); do
    b=$(busy)
    if [ "$b" -lt 10 ]; then return 0; fi
  done
  echo "warning: the machine was not quiet (CPU ${b}% busy before the run); timings are suspect"
}
