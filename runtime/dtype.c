#include <string.h>

#include "ir.h"

typedef struct dtype_info {
  const char *name;
  int bits;
} dtype_info;

static const dtype_info dtypes[] = {
#define X(e, n, s, b) [n] = {s, b},
    TC_DTYPE_LIST(X)
#undef X
};

/* Every number of the list must be its index so the table above is dense. */
_Static_assert(sizeof dtypes / sizeof dtypes[0] == TC_DTYPE_COUNT, "dtype table has gaps");

bool tc_domain_is_onnx(const char *domain) {
  return !domain || !*domain || strcmp(domain, "ai.onnx") == 0;
}

bool tc_domain_equal(const char *a, const char *b) {
  if (tc_domain_is_onnx(a) || tc_domain_is_onnx(b))
    return tc_domain_is_onnx(a) && tc_domain_is_onnx(b);
  return strcmp(a, b) == 0;
}

bool tc_dtype_known(int32_t dt) { return dt > 0 && dt < TC_DTYPE_COUNT; }

const char *tc_dtype_name(int32_t dt) {
  if (dt == TC_DTYPE_SEQUENCE || dt == TC_DTYPE_NONE)
    return dt == TC_DTYPE_SEQUENCE ? "sequence" : "empty optional";
  return dt >= 0 && dt < TC_DTYPE_COUNT ? dtypes[dt].name : "unknown";
}

int tc_dtype_bits(int32_t dt) { return tc_dtype_known(dt) ? dtypes[dt].bits : 0; }

size_t tc_dtype_bytes(int32_t dt, size_t count) {
  size_t bits = (size_t)tc_dtype_bits(dt);
  return (bits * count + 7) / 8;
}
