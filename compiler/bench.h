/* `tacoc bench`: latency, throughput, peak memory and accuracy of models side by side. */
#ifndef TC_BENCH_H
#define TC_BENCH_H

/* Runs the command with its arguments (after "bench"); returns the exit
 * status: 0 ok, 1 a gate (--fail-if-slower, --max-error) failed, 2 any error. */
int tc_cmd_bench(int argc, char **argv);

#endif
