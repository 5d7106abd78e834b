/* Sequence and optional ops: SequenceEmpty, SequenceConstruct,
 * SequenceInsert, SequenceErase, SequenceAt, SequenceLength,
 * SplitToSequence, ConcatFromSequence, Optional, OptionalHasElement,
 * OptionalGetElement.
 *
 * Values (kernel.h): a sequence is a tc_rt_tensor of dtype
 * TC_DTYPE_SEQUENCE whose data is an array of element tensors; an empty
 * optional is dtype TC_DTYPE_NONE; an optional holding a value is that value.
 * Every element a kernel puts in a sequence is a copy in the run's arena
 * (the memory plan may give an input's slot to a later node), and a tensor
 * taken out of a sequence is copied into the node's own output. */
#include <string.h>

#include "kernel.h"

static const tc_rt_tensor *arg(const tc_rt_tensor *const *in, size_t n_in, size_t i) {
  return i < n_in ? in[i] : NULL;
}

static bool is_seq(const tc_rt_tensor *t) { return t && t->dtype == TC_DTYPE_SEQUENCE; }

static size_t seq_len(const tc_rt_tensor *s) { return (size_t)s->dims[0]; }

static const tc_rt_tensor *seq_items(const tc_rt_tensor *s) { return s->data; }

static tc_status need_seq(tc_kernel_ctx *k, const tc_rt_tensor *s, const char *what) {
  return is_seq(s) ? TC_STATUS_OK
                   : tc_kernel_fail(k, TC_STATUS_INVALID, "%s must be a sequence", what);
}

static tc_status need_tensor(tc_kernel_ctx *k, const tc_rt_tensor *t, const char *what) {
  if (!t || t->dtype == TC_DTYPE_NONE)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "%s is required", what);
  if (t->dtype == TC_DTYPE_SEQUENCE)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "%s must be a tensor, not a sequence", what);
  return TC_STATUS_OK;
}

/* A sequence of n elements of dtype elem in out; *items gets its array. */
static tc_status seq_new(tc_kernel_ctx *k, tc_rt_tensor *out, int32_t elem, size_t n,
                         tc_rt_tensor **items) {
  memset(out, 0, sizeof *out);
  *items = tc_arena_alloc(k->arena, (n ? n : 1) * sizeof **items);
  if (!*items)
    return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
  out->dtype = TC_DTYPE_SEQUENCE;
  out->rank = 1;
  out->dims[0] = (int64_t)n;
  out->dims[1] = elem;
  out->data = *items;
  out->bytes = n * sizeof **items;
  return TC_STATUS_OK;
}

/* dst = a copy of tensor src in the run's arena. */
static tc_status arena_copy(tc_kernel_ctx *k, const tc_rt_tensor *src, tc_rt_tensor *dst) {
  *dst = *src;
  dst->data = tc_arena_alloc(k->arena, src->bytes ? src->bytes : 1);
  if (!dst->data)
    return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
  if (src->bytes)
    memcpy(dst->data, src->data, src->bytes);
  return TC_STATUS_OK;
}

/* out = a copy of tensor src as the node's output (planned memory allowed). */
static tc_status output_copy(tc_kernel_ctx *k, const tc_rt_tensor *src, tc_rt_tensor *out) {
  tc_status s = tc_kernel_alloc_uninit(k, out, src->dtype, src->rank, src->dims);
  if (!s && src->bytes)
    memcpy(out->data, src->data, src->bytes);
  return s;
}

/* Position pos of a sequence of n elements: [-n, n - 1], or [-n, n] when
 * end_ok (insertion); -1 when out of range. */
static int64_t position(const tc_rt_tensor *p, size_t n, int64_t dflt, bool end_ok) {
  int64_t v = p && tc_rt_numel(p) == 1 ? tc_rt_get_i64(p, 0) : dflt;
  if (v < 0)
    v += (int64_t)n;
  return v >= 0 && (v < (int64_t)n || (end_ok && v == (int64_t)n)) ? v : -1;
}

static tc_status run_sequence_empty(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                    tc_rt_tensor *out, size_t n_out) {
  (void)in, (void)n_in, (void)n_out;
  int64_t dt = tc_attr_int(k->node, "dtype", TC_DTYPE_F32);
  if (!tc_dtype_known((int32_t)dt) && dt != TC_DTYPE_STRING)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "dtype %lld is not a tensor element type",
                          (long long)dt);
  tc_rt_tensor *items;
  return seq_new(k, &out[0], (int32_t)dt, 0, &items);
}

static tc_status run_sequence_construct(tc_kernel_ctx *k, const tc_rt_tensor *const *in,
                                        size_t n_in, tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  if (!n_in)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "at least one input is required");
  for (size_t i = 0; i < n_in; i++) {
    tc_status s = need_tensor(k, in[i], "every input");
    if (s)
      return s;
    if (in[i]->dtype != in[0]->dtype)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "input %zu is %s, input 0 %s", i,
                            tc_dtype_name(in[i]->dtype), tc_dtype_name(in[0]->dtype));
  }
  tc_rt_tensor *items;
  tc_status s = seq_new(k, &out[0], in[0]->dtype, n_in, &items);
  for (size_t i = 0; !s && i < n_in; i++)
    s = arena_copy(k, in[i], &items[i]);
  return s;
}

static tc_status run_sequence_insert(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                     tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *seq = arg(in, n_in, 0), *t = arg(in, n_in, 1);
  tc_status s = need_seq(k, seq, "input_sequence");
  if (!s)
    s = need_tensor(k, t, "tensor");
  if (s)
    return s;
  size_t n = seq_len(seq);
  if (t->dtype != (int32_t)seq->dims[1])
    return tc_kernel_fail(k, TC_STATUS_INVALID, "tensor is %s, the sequence holds %s",
                          tc_dtype_name(t->dtype), tc_dtype_name((int32_t)seq->dims[1]));
  int64_t pos = position(arg(in, n_in, 2), n, (int64_t)n, true);
  if (pos < 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "position is outside [-%zu, %zu]", n, n);
  tc_rt_tensor *items;
  if ((s = seq_new(k, &out[0], t->dtype, n + 1, &items)))
    return s;
  const tc_rt_tensor *old = seq_items(seq);
  for (size_t i = 0, j = 0; i <= n; i++)
    if ((int64_t)i != pos)
      items[i] = old[j++]; /* already arena copies */
  return arena_copy(k, t, &items[pos]);
}

/* The input sequence and the position input 1 names in it (dflt when absent). */
static tc_status seq_and_pos(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                             int64_t dflt, const tc_rt_tensor **seq, int64_t *pos) {
  *seq = arg(in, n_in, 0);
  tc_status s = need_seq(k, *seq, "input_sequence");
  if (s)
    return s;
  *pos = position(arg(in, n_in, 1), seq_len(*seq), dflt, false);
  return *pos < 0 ? tc_kernel_fail(k, TC_STATUS_INVALID, "position is outside the sequence of %zu",
                                   seq_len(*seq))
                  : TC_STATUS_OK;
}

static tc_status run_sequence_erase(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                    tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *seq;
  int64_t pos;
  tc_rt_tensor *items;
  tc_status s = seq_and_pos(k, in, n_in, -1, &seq, &pos);
  if (s || (s = seq_new(k, &out[0], (int32_t)seq->dims[1], seq_len(seq) - 1, &items)))
    return s;
  const tc_rt_tensor *old = seq_items(seq);
  for (size_t i = 0, j = 0; i < seq_len(seq); i++)
    if ((int64_t)i != pos)
      items[j++] = old[i];
  return TC_STATUS_OK;
}

static tc_status run_sequence_at(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                 tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *seq;
  int64_t pos;
  if (!arg(in, n_in, 1))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "position is required");
  tc_status s = seq_and_pos(k, in, n_in, 0, &seq, &pos);
  return s ? s : output_copy(k, &seq_items(seq)[pos], &out[0]);
}

static tc_status run_sequence_length(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                     tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *seq = arg(in, n_in, 0);
  tc_status s = need_seq(k, seq, "input_sequence");
  if (!s)
    s = tc_kernel_alloc(k, &out[0], TC_DTYPE_I64, 0, NULL);
  if (!s)
    tc_rt_set_i64(&out[0], 0, (int64_t)seq_len(seq));
  return s;
}

static tc_status run_split_to_sequence(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                       tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = arg(in, n_in, 0), *split = arg(in, n_in, 1);
  tc_status s = need_tensor(k, x, "input");
  if (s)
    return s;
  size_t es = tc_dtype_elem_bytes(x->dtype);
  int64_t axis = tc_attr_int(k->node, "axis", 0), r = (int64_t)x->rank;
  if (axis < 0)
    axis += r;
  if (!es || axis < 0 || axis >= r)
    return tc_kernel_fail(k, TC_STATUS_INVALID, es ? "axis is out of range" : "sub-byte dtype");
  int64_t dim = x->dims[axis], lens[4096];
  size_t parts = 0;
  bool keepdims = tc_attr_int(k->node, "keepdims", 1) != 0;
  if (!split) { /* one element per index, the axis dropped unless keepdims */
    if (dim > 4096)
      return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "more than 4096 parts");
    for (parts = 0; (int64_t)parts < dim; parts++)
      lens[parts] = 1;
  } else if (split->rank == 0) { /* chunks of that length, the last one shorter */
    int64_t c = tc_rt_get_i64(split, 0);
    if (c <= 0)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "split must be positive");
    for (int64_t at = 0; at < dim && parts < 4096; at += c)
      lens[parts++] = dim - at < c ? dim - at : c;
    keepdims = true;
  } else {
    int64_t sum = 0;
    parts = tc_rt_numel(split);
    if (parts > 4096)
      return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "more than 4096 parts");
    for (size_t i = 0; i < parts; i++) {
      lens[i] = tc_rt_get_i64(split, i);
      if (lens[i] < 0)
        return tc_kernel_fail(k, TC_STATUS_INVALID, "split lengths must not be negative");
      sum += lens[i];
    }
    if (sum != dim)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "split lengths add up to %lld, the axis has %lld",
                            (long long)sum, (long long)dim);
    keepdims = true;
  }
  size_t outer = 1, inner = es;
  for (int64_t d = 0; d < r; d++)
    if (d < axis)
      outer *= (size_t)x->dims[d];
    else if (d > axis)
      inner *= (size_t)x->dims[d];
  tc_rt_tensor *items;
  if ((s = seq_new(k, &out[0], x->dtype, parts, &items)))
    return s;
  int64_t at = 0;
  for (size_t p = 0; p < parts; p++) {
    tc_rt_tensor *e = &items[p];
    e->dtype = x->dtype;
    e->rank = 0;
    for (int64_t d = 0; d < r; d++)
      if (d != axis)
        e->dims[e->rank++] = x->dims[d];
      else if (keepdims)
        e->dims[e->rank++] = lens[p];
    size_t chunk = (size_t)lens[p] * inner;
    e->bytes = outer * chunk;
    e->data = tc_arena_alloc(k->arena, e->bytes ? e->bytes : 1);
    if (!e->data)
      return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
    for (size_t o = 0; o < outer; o++)
      memcpy((char *)e->data + o * chunk,
             (const char *)x->data + (o * (size_t)dim + (size_t)at) * inner, chunk);
    at += lens[p];
  }
  return TC_STATUS_OK;
}

static tc_status run_concat_from_sequence(tc_kernel_ctx *k, const tc_rt_tensor *const *in,
                                          size_t n_in, tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *seq = arg(in, n_in, 0);
  tc_status s = need_seq(k, seq, "input_sequence");
  if (s)
    return s;
  size_t n = seq_len(seq);
  const tc_rt_tensor *it = seq_items(seq);
  if (!n)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "the sequence is empty");
  bool new_axis = tc_attr_int(k->node, "new_axis", 0) != 0;
  int64_t r = (int64_t)it[0].rank, out_r = r + new_axis, axis = tc_attr_int(k->node, "axis", 0);
  if (axis < 0)
    axis += out_r;
  size_t es = tc_dtype_elem_bytes(it[0].dtype);
  if (!es || axis < 0 || axis >= out_r || (!new_axis && !r) || out_r > TC_MAX_RANK)
    return tc_kernel_fail(k, TC_STATUS_INVALID, es ? "axis is out of range" : "sub-byte dtype");
  int64_t dims[TC_MAX_RANK], total = 0;
  for (size_t i = 0; i < n; i++) {
    bool same = it[i].dtype == it[0].dtype && it[i].rank == it[0].rank;
    for (int64_t d = 0; same && d < r; d++)
      same = (!new_axis && d == axis) || it[i].dims[d] == it[0].dims[d];
    if (!same)
      return tc_kernel_fail(k, TC_STATUS_INVALID,
                            "element %zu does not match element 0 off the concatenation axis", i);
    total += new_axis ? 1 : it[i].dims[axis];
  }
  for (int64_t d = 0; d < out_r; d++)
    dims[d] = d == axis ? total : it[0].dims[new_axis && d > axis ? d - 1 : d];
  if ((s = tc_kernel_alloc_uninit(k, &out[0], it[0].dtype, (size_t)out_r, dims)))
    return s;
  size_t outer = 1, inner = es;
  for (int64_t d = 0; d < out_r; d++)
    if (d < axis)
      outer *= (size_t)dims[d];
    else if (d > axis)
      inner *= (size_t)dims[d];
  size_t row = (size_t)total * inner, at = 0;
  for (size_t i = 0; i < n; i++) {
    size_t len = new_axis ? 1 : (size_t)it[i].dims[axis], chunk = len * inner;
    for (size_t o = 0; o < outer; o++)
      memcpy((char *)out[0].data + o * row + at * inner, (const char *)it[i].data + o * chunk,
             chunk);
    at += len;
  }
  return TC_STATUS_OK;
}

static tc_status run_optional(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                              tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = arg(in, n_in, 0);
  if (!x || x->dtype == TC_DTYPE_NONE) {
    memset(&out[0], 0, sizeof out[0]);
    out[0].dtype = TC_DTYPE_NONE;
    return TC_STATUS_OK;
  }
  if (is_seq(x)) {
    out[0] = *x; /* its elements are arena copies */
    return TC_STATUS_OK;
  }
  return output_copy(k, x, &out[0]);
}

static tc_status run_optional_has_element(tc_kernel_ctx *k, const tc_rt_tensor *const *in,
                                          size_t n_in, tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = arg(in, n_in, 0);
  tc_status s = tc_kernel_alloc(k, &out[0], TC_DTYPE_BOOL, 0, NULL);
  if (!s)
    tc_rt_set_i64(&out[0], 0, x && x->dtype != TC_DTYPE_NONE);
  return s;
}

static tc_status run_optional_get_element(tc_kernel_ctx *k, const tc_rt_tensor *const *in,
                                          size_t n_in, tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = arg(in, n_in, 0);
  if (!x || x->dtype == TC_DTYPE_NONE)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "the optional input is empty");
  if (is_seq(x)) {
    out[0] = *x;
    return TC_STATUS_OK;
  }
  return output_copy(k, x, &out[0]);
}

const tc_kernel_def tc_kernels_seqops[] = {
    {"SequenceEmpty", "", 11, run_sequence_empty, NULL},
    {"SequenceConstruct", "", 11, run_sequence_construct, NULL},
    {"SequenceInsert", "", 11, run_sequence_insert, NULL},
    {"SequenceErase", "", 11, run_sequence_erase, NULL},
    {"SequenceAt", "", 11, run_sequence_at, NULL},
    {"SequenceLength", "", 11, run_sequence_length, NULL},
    {"SplitToSequence", "", 11, run_split_to_sequence, NULL},
    {"ConcatFromSequence", "", 11, run_concat_from_sequence, NULL},
    {"Optional", "", 15, run_optional, NULL},
    {"OptionalHasElement", "", 15, run_optional_has_element, NULL},
    {"OptionalGetElement", "", 15, run_optional_get_element, NULL},
    {NULL},
};
