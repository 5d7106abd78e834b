/* `tacoc optimize` and `tacoc passes`. */
#ifndef TC_OPTIMIZE_H
#define TC_OPTIMIZE_H

int tc_cmd_optimize(int argc, char **argv);
int tc_cmd_passes(void);

#endif
