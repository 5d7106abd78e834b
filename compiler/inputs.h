/* Model inputs for the commands that run models (run, bench): .npy and
 * TensorProto (.pb) files, folders of them, and deterministic generated values. */
#ifndef TC_INPUTS_H
#define TC_INPUTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir.h"
#include "tacort.h"

/* Seed of the generated inputs (xorshift64 state), the same in every command. */
#define TC_INPUT_SEED 0x9e3779b97f4a7c15ull

/* Reads a .npy file or a serialized TensorProto into *out (data malloc'd;
 * release with tc_ndarray_release). -1 with a reason in why on failure. */
int tc_input_load(const char *file, tc_ndarray *out, char *why, size_t cap);

/* Fills *out with dtype and shape dims and deterministic values drawn from
 * *state: floats uniform in [-1, 1), integers in [0, 10), bools 0/1; an
 * integer or bool input whose name (may be NULL) has "mask" in it is all
 * ones (an
 * attention mask that lets everything through; values like 9 would make
 * (1 - mask) * -10000 overflow half precision). Data is malloc'd
 * (tc_ndarray_release). -1 with a reason for dtypes it cannot make. */
int tc_input_random_fill(tc_ndarray *out, const char *name, int32_t dtype, size_t rank,
                         const int64_t *dims, uint64_t *state, char *why, size_t cap);

/* tc_input_random_fill shaped like the declared input v, symbolic or unknown
 * dims set to 1. -1 with a reason when v's type does not give dtype and rank. */
int tc_input_random(const tc_value *v, uint64_t *state, tc_ndarray *out, char *why, size_t cap);

/* Writes "DIR/<name>EXT" into buf with every character of name other than
 * letters, digits, '.', '-' and '_' replaced by '_' (the file names `tacoc
 * run --output-dir` writes and `--inputs DIR` reads). */
void tc_input_file_path(const char *dir, const char *name, const char *ext, char *buf, size_t cap);

/* Splits "NAME=FILE" in place; false when there is no '=' or NAME is empty. */
bool tc_input_split_spec(char *spec, const char **name, const char **file);

/* Reads the inputs of m that have no initializer from the folder dir, in graph
 * input order: dir/<name>.npy, or ONNX test data (dir/input_<k>.pb, or the
 * same inside dir/test_data_set_0), a .pb matched by the name it carries or
 * else by position. names[i] (malloc'd) and arrays[i] are filled for i <
 * *n; the caller frees them, on failure too. -1 with a reason naming the
 * missing input or the bad file. */
int tc_input_load_dir(const char *dir, const tc_model *m, size_t cap_inputs, char **names,
                      tc_ndarray *arrays, size_t *n, char *why, size_t cap);

#endif
