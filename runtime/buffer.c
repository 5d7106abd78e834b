/* Reference-counted tensor payloads: heap memory or a read-only file mapping. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ir.h"

struct tc_buffer {
  int refs;
  bool mapped, borrowed;
  void *data;
  size_t size;
};

tc_buffer *tc_buffer_wrap_heap(void *data, size_t size) {
  tc_buffer *b = malloc(sizeof *b);
  if (!b) {
    free(data);
    return NULL;
  }
  b->refs = 1;
  b->mapped = false;
  b->borrowed = false;
  b->data = data;
  b->size = size;
  return b;
}

tc_buffer *tc_buffer_wrap_static(void *data, size_t size) {
  tc_buffer *b = malloc(sizeof *b);
  if (!b)
    return NULL;
  *b = (tc_buffer){.refs = 1, .borrowed = true, .data = data, .size = size};
  return b;
}

tc_buffer *tc_buffer_new(size_t size) {
  void *p = calloc(1, size ? size : 1);
  return p ? tc_buffer_wrap_heap(p, size) : NULL;
}

tc_buffer *tc_buffer_map_file(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    errno = EISDIR;
    return NULL;
  }
  size_t size = (size_t)st.st_size;
  void *p = NULL;
  if (size) {
    p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      close(fd);
      return NULL;
    }
  }
  close(fd);
  tc_buffer *b = malloc(sizeof *b);
  if (!b) {
    if (p)
      munmap(p, size);
    errno = ENOMEM;
    return NULL;
  }
  b->refs = 1;
  b->borrowed = false;
  b->mapped = true;
  b->data = p;
  b->size = size;
  return b;
}

void *tc_buffer_data(const tc_buffer *b) { return b->data; }
size_t tc_buffer_size(const tc_buffer *b) { return b->size; }

tc_buffer *tc_buffer_ref(tc_buffer *b) {
  if (b)
    b->refs++;
  return b;
}

void tc_buffer_unref(tc_buffer *b) {
  if (!b || --b->refs > 0)
    return;
  if (b->mapped) {
    if (b->data)
      munmap(b->data, b->size);
  } else if (!b->borrowed) {
    free(b->data);
  }
  free(b);
}
