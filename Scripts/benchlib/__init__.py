"""Scripts/bench as a package, one module per subject (Scripts/bench.py is its entry point).

  cli          the command line and the main loop: every repetition, workload and LB
  installs     apt-get and pip installs of the tools the loads need
  build        the release build of switchyard
  procfs       what /proc says: CPU time, RSS, descendants, TCP sockets, retransmissions
  processes    starting, stopping (by PID), pinning (taskset) and waiting for a port;
               shared with Scripts/bench-memory.py and Scripts/soak.py
  backends     the loopback backends: iperf3, nginx HTTP, sockperf, redis
  lbconfigs    the LBs compared and their configuration files and command lines
  lbstart      starting one LB in front of backend ports
  workloads/   the workloads, one module per group (bulk, latency, connrate, redis, scale)
  report       medians, markdown tables, chart, the files written to --out
  log          the `[bench HH:MM:SS]` progress lines on stderr
"""
