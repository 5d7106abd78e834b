/* The optimized model's records in metadata_props (kernel libraries, node
 * bindings, algorithm choices), shared by the CPU tuner and the CUDA
 * target. */
#ifndef TC_META_H
#define TC_META_H

#include <stdbool.h>

#include "ir.h"

/* Removes every entry whose key starts with prefix. */
void tc_meta_strip_prefix(tc_model *m, const char *prefix);
/* Appends key = value; -1 on OOM. */
int tc_meta_add(tc_model *m, const char *key, const char *value);
/* Gives every node for which want(n) holds a name no other node has
 * (unnamed or shared names become tacoc_cg_<id>): bindings go by name.
 * -1 on OOM. */
int tc_meta_name_nodes(tc_model *m, bool (*want)(const tc_node *n));
/* The SHA-256 of the file at path as 64 hex digits; false when it cannot
 * be read. */
bool tc_meta_file_sha256(const char *path, char hex[65]);

/* Moves a library written at tmp into place at final once the model is
 * written (0 on success, else an error was printed), or removes it
 * (discard: the model could not be written). */
int tc_meta_commit_file(const char *tmp, const char *final, bool discard);

#endif
