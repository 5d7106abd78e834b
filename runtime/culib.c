/* CUDA kernel library files and launch geometry (culib.h). */
#include "culib.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char magic[8] = "TACOCU1";

static bool put(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n; }
static void le32(unsigned char *b, uint32_t v) {
  for (int i = 0; i < 4; i++)
    b[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t rd32(const unsigned char *b) {
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static uint64_t rd64(const unsigned char *b) { return rd32(b) | (uint64_t)rd32(b + 4) << 32; }

int tc_culib_write(const char *path, const tc_cu_entry *e, size_t count) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return errno ? errno : EIO;
  unsigned char hdr[16] = {0}, ent[16] = {0}, zero[8] = {0};
  memcpy(hdr, magic, 8);
  le32(hdr + 8, (uint32_t)count);
  bool ok = put(f, hdr, sizeof hdr);
  for (size_t i = 0; ok && i < count; i++) {
    le32(ent, e[i].arch);
    le32(ent + 4, e[i].kind);
    le32(ent + 8, (uint32_t)e[i].size);
    le32(ent + 12, (uint32_t)((uint64_t)e[i].size >> 32));
    ok = put(f, ent, sizeof ent) && put(f, e[i].data, e[i].size) &&
         put(f, zero, (8 - e[i].size % 8) % 8);
  }
  int rc = ok ? 0 : (errno ? errno : EIO);
  if (fclose(f) && !rc)
    rc = errno ? errno : EIO;
  if (rc)
    remove(path);
  return rc;
}

bool tc_culib_parse(const unsigned char *b, size_t size, tc_cu_entry *e, size_t cap, size_t *count,
                    char *why, size_t why_cap) {
  *count = 0;
  if (size < 16 || memcmp(b, magic, 8)) {
    snprintf(why, why_cap, "not a tacoc CUDA kernel library (bad header)");
    return false;
  }
  uint32_t n = rd32(b + 8);
  size_t off = 16;
  for (uint32_t i = 0; i < n; i++) {
    if (size - off < 16) {
      snprintf(why, why_cap, "entry %u of %u is cut off", i, n);
      return false;
    }
    uint32_t arch = rd32(b + off), kind = rd32(b + off + 4);
    uint64_t len = rd64(b + off + 8);
    off += 16;
    if (len > size - off || (kind != TC_CU_PTX && kind != TC_CU_CUBIN) || !len) {
      snprintf(why, why_cap, "entry %u of %u: bad kind %u or size %llu", i, n, kind,
               (unsigned long long)len);
      return false;
    }
    if (kind == TC_CU_PTX && b[off + len - 1] != 0) {
      snprintf(why, why_cap, "entry %u of %u: PTX text is not NUL-terminated", i, n);
      return false;
    }
    if (*count < cap)
      e[(*count)++] = (tc_cu_entry){.arch = arch, .kind = kind, .data = b + off, .size = len};
    off += len + (8 - len % 8) % 8;
    if (off > size) {
      snprintf(why, why_cap, "entry %u of %u: padding is cut off", i, n);
      return false;
    }
  }
  return true;
}

const tc_cu_entry *tc_culib_pick(const tc_cu_entry *e, size_t count, uint32_t sm) {
  const tc_cu_entry *best = NULL;
  for (size_t i = 0; i < count; i++) /* a CUBIN of the same major version */
    if (e[i].kind == TC_CU_CUBIN && e[i].arch / 10 == sm / 10 && e[i].arch <= sm &&
        (!best || e[i].arch > best->arch))
      best = &e[i];
  if (best)
    return best;
  for (size_t i = 0; i < count; i++) /* else PTX the driver can compile for it */
    if (e[i].kind == TC_CU_PTX && e[i].arch <= sm && (!best || e[i].arch > best->arch))
      best = &e[i];
  return best;
}

static int64_t elem_bytes(const tc_cg_spec *sp) {
  return sp->dtype == 10 || sp->dtype == 16 ? 2 : 4; /* float16, bfloat16 : float32 */
}

int tc_cu_vec(const tc_cg_spec *sp) {
  int64_t v = 16 / elem_bytes(sp);
  return sp->cols % v == 0 ? (int)v : 1;
}

int tc_cu_block(const tc_cg_spec *sp) {
  if (sp->kind == TC_CG_BIAS_ACT)
    return 256;
  int64_t nv = sp->cols / tc_cu_vec(sp), t = (nv + 31) / 32 * 32;
  return (int)(t > 512 ? 512 : t);
}

int tc_cu_per_thread(const tc_cg_spec *sp) {
  int64_t nv = sp->cols / tc_cu_vec(sp), t = tc_cu_block(sp);
  return (int)((nv + t - 1) / t);
}
