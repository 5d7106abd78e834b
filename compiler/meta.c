/* Model metadata records (meta.h). */
#include "meta.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#include "native.h"

void tc_meta_strip_prefix(tc_model *m, const char *prefix) {
  Onnx__ModelProto *pb = m->pb;
  size_t k = 0, len = strlen(prefix);
  for (size_t i = 0; i < pb->n_metadata_props; i++) {
    Onnx__StringStringEntryProto *e = pb->metadata_props[i];
    if (e->key && !strncmp(e->key, prefix, len)) {
      protobuf_c_message_free_unpacked(&e->base, NULL);
      continue;
    }
    pb->metadata_props[k++] = e;
  }
  pb->n_metadata_props = k;
}

int tc_meta_add(tc_model *m, const char *key, const char *value) {
  Onnx__ModelProto *pb = m->pb;
  Onnx__StringStringEntryProto **v =
      realloc(pb->metadata_props, (pb->n_metadata_props + 1) * sizeof *v);
  if (!v)
    return -1;
  pb->metadata_props = v;
  Onnx__StringStringEntryProto *e = malloc(sizeof *e);
  if (!e)
    return -1;
  onnx__string_string_entry_proto__init(e);
  e->key = strdup(key);
  e->value = strdup(value);
  if (!e->key || !e->value) {
    free(e->key);
    free(e->value);
    free(e);
    return -1;
  }
  v[pb->n_metadata_props++] = e;
  return 0;
}

int tc_meta_name_nodes(tc_model *m, bool (*want)(const tc_node *n)) {
  for (tc_node *n = m->graph->first; n; n = n->next) {
    if (!want(n))
      continue;
    bool dup = !n->name || !n->name[0];
    for (tc_node *p = m->graph->first; !dup && p; p = p->next)
      dup = p != n && p->name && !strcmp(p->name, n->name);
    if (!dup)
      continue;
    char buf[64];
    snprintf(buf, sizeof buf, "tacoc_cg_%u", n->id);
    if (!(n->name = tc_arena_strdup(m->arena, buf)))
      return -1;
  }
  return 0;
}

bool tc_meta_file_sha256(const char *path, char hex[65]) {
  FILE *f = fopen(path, "rb");
  unsigned char *bytes = NULL;
  long len = -1;
  bool ok = false;
  hex[0] = 0;
  if (f && !fseek(f, 0, SEEK_END) && (len = ftell(f)) > 0 && !fseek(f, 0, SEEK_SET) &&
      (bytes = malloc((size_t)len)) && fread(bytes, 1, (size_t)len, f) == (size_t)len) {
    tc_sha256_hex(bytes, (size_t)len, hex);
    ok = true;
  }
  free(bytes);
  if (f)
    fclose(f);
  return ok;
}

int tc_meta_commit_file(const char *tmp, const char *final, bool discard) {
  if (discard) {
    unlink(tmp);
    return 0;
  }
  if (rename(tmp, final))
    return tc_cli_error("%s: cannot move the kernel library into place: %s", final,
                        strerror(errno));
  return 0;
}
