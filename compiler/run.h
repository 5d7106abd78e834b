/* `tacoc run`: execute a model in libtacort (see run.c). */
#ifndef TC_RUN_H
#define TC_RUN_H

/* Runs the command with its arguments (after "run"); returns the exit status. */
int tc_cmd_run(int argc, char **argv);

#endif
