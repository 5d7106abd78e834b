/* CPU kernel generation with the LLVM C API (see cg.h).
 *
 * Every kernel is a loop over rows [lo, hi) whose body makes one to three
 * passes over the row's cols elements. A pass runs a vector loop (vectors of
 * `width` floats, `unroll` vectors per step, one accumulator per unrolled
 * vector) over the largest multiple of width*unroll, then a scalar loop over
 * the tail; the same element code is built for both, at the vector or the
 * scalar type. cols is a constant, so LLVM sees every trip count. */
#include "cg.h"

#include <errno.h>
#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <math.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct cg {
  LLVMContextRef ctx;
  LLVMModuleRef mod;
  LLVMBuilderRef b;
  LLVMValueRef fn;
  LLVMTypeRef f32, i32, i64, ptr, i8;
} cg;

/* ---- small IR helpers ---- */

static unsigned lanes(LLVMTypeRef t) {
  return LLVMGetTypeKind(t) == LLVMVectorTypeKind ? LLVMGetVectorSize(t) : 1;
}

/* The scalar constant s as type t's shape (splat for vectors). */
static LLVMValueRef const_like(LLVMTypeRef t, LLVMValueRef s) {
  unsigned n = lanes(t);
  if (n == 1)
    return s;
  LLVMValueRef e[64];
  for (unsigned i = 0; i < n; i++)
    e[i] = s;
  return LLVMConstVector(e, n);
}
/* A float / int32 constant of type t's shape. */
static LLVMValueRef K(cg *c, LLVMTypeRef t, double v) {
  return const_like(t, LLVMConstReal(c->f32, v));
}
static LLVMValueRef KI(cg *c, LLVMTypeRef t, long long v) {
  return const_like(t, LLVMConstInt(c->i32, (unsigned long long)v, 1));
}

static LLVMTypeRef int_like(cg *c, LLVMTypeRef t) {
  unsigned n = lanes(t);
  return n == 1 ? c->i32 : LLVMVectorType(c->i32, n);
}

/* Broadcasts the scalar s (float or int32) to type t of its element type. */
static LLVMValueRef splat(cg *c, LLVMTypeRef t, LLVMValueRef s) {
  unsigned n = lanes(t);
  if (n == 1)
    return s;
  LLVMValueRef v =
      LLVMBuildInsertElement(c->b, LLVMGetPoison(t), s, LLVMConstInt(c->i32, 0, 0), "");
  LLVMValueRef zeros[64];
  for (unsigned i = 0; i < n; i++)
    zeros[i] = LLVMConstInt(c->i32, 0, 0);
  return LLVMBuildShuffleVector(c->b, v, LLVMGetPoison(t), LLVMConstVector(zeros, n), "");
}

static LLVMValueRef intrin(cg *c, const char *name, LLVMTypeRef t, LLVMValueRef *args, unsigned n) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->mod, id, &t, 1);
  LLVMTypeRef ft = LLVMIntrinsicGetType(c->ctx, id, &t, 1);
  return LLVMBuildCall2(c->b, ft, f, args, n, "");
}

static LLVMValueRef add(cg *c, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFAdd(c->b, a, b, "");
}
static LLVMValueRef sub(cg *c, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFSub(c->b, a, b, "");
}
static LLVMValueRef mul(cg *c, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFMul(c->b, a, b, "");
}
static LLVMValueRef fdivv(cg *c, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFDiv(c->b, a, b, "");
}
static LLVMValueRef fma3(cg *c, LLVMValueRef a, LLVMValueRef b, LLVMValueRef d) {
  LLVMValueRef args[3] = {a, b, d};
  return intrin(c, "llvm.fma", LLVMTypeOf(a), args, 3);
}
/* a > b ? a : b; a NaN b is kept (the comparison is unordered). */
static LLVMValueRef fmax_keep_nan(cg *c, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealULT, a, b, ""), b, a, "");
}
static LLVMValueRef fmin_keep_nan(cg *c, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealUGT, a, b, ""), b, a, "");
}

/* Horner: p[0] + x*(p[1] + x*(...)). */
static LLVMValueRef poly(cg *c, LLVMValueRef x, const double *p, int n) {
  LLVMTypeRef t = LLVMTypeOf(x);
  LLVMValueRef r = K(c, t, p[n - 1]);
  for (int i = n - 2; i >= 0; i--)
    r = fma3(c, r, x, K(c, t, p[i]));
  return r;
}

/* exp(x) for x <= 88 (above, e^88): range reduction by ln 2 with a two-part
 * constant, a degree-6 polynomial (Cephes expf coefficients), 2^n built in
 * the exponent bits. About 1 ulp; NaN stays NaN; x below -87.3 gives
 * 2^-126 * e^r (about 1e-38) instead of flushing to 0. */
static LLVMValueRef vexp(cg *c, LLVMValueRef x) {
  LLVMTypeRef t = LLVMTypeOf(x), it = int_like(c, t);
  x = fmin_keep_nan(c, fmax_keep_nan(c, x, K(c, t, -87.33654475)), K(c, t, 88.0));
  LLVMValueRef xl = mul(c, x, K(c, t, 1.44269504088896341));
  LLVMValueRef n = intrin(c, "llvm.rint", t, &xl, 1);
  LLVMValueRef r = fma3(c, n, K(c, t, -0.693359375), x);
  r = fma3(c, n, K(c, t, 2.12194440e-4), r);
  static const double p[] = {5.0000001201e-1, 1.6666665459e-1, 4.1665795894e-2,
                             8.3334519073e-3, 1.3981999507e-3, 1.9875691500e-4};
  LLVMValueRef q = poly(c, r, p, 6);
  LLVMValueRef y = fma3(c, mul(c, q, r), r, add(c, r, K(c, t, 1.0)));
  /* 2^n: n + 1.5*2^23 puts n in the low mantissa bits without a float->int
   * conversion (so NaN stays defined); then (n + 127) << 23. */
  LLVMValueRef mag = LLVMBuildBitCast(c->b, add(c, n, K(c, t, 12582912.0)), it, "");
  LLVMValueRef e = LLVMBuildAdd(c->b, mag, KI(c, t, 127 - 0x4B400000), "");
  LLVMValueRef scale = LLVMBuildBitCast(c->b, LLVMBuildShl(c->b, e, KI(c, t, 23), ""), t, "");
  return mul(c, y, scale);
}

/* erf(x): Abramowitz & Stegun 7.1.26 (1.5e-7 absolute in exact arithmetic,
 * a few 1e-7 in float). */
static LLVMValueRef verf(cg *c, LLVMValueRef x) {
  LLVMTypeRef t = LLVMTypeOf(x);
  LLVMValueRef ax = intrin(c, "llvm.fabs", t, &x, 1);
  LLVMValueRef tt = fdivv(c, K(c, t, 1.0), fma3(c, ax, K(c, t, 0.3275911), K(c, t, 1.0)));
  static const double a[] = {0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429};
  LLVMValueRef p = mul(c, poly(c, tt, a, 5), tt);
  LLVMValueRef e = vexp(c, mul(c, LLVMBuildFNeg(c->b, ax, ""), ax));
  LLVMValueRef y = sub(c, K(c, t, 1.0), mul(c, p, e));
  LLVMValueRef args[2] = {y, x};
  return intrin(c, "llvm.copysign", t, args, 2);
}

/* tanh(x) = 1 - 2 / (e^(2x) + 1), saturating to +-1. */
static LLVMValueRef vtanh(cg *c, LLVMValueRef x) {
  LLVMTypeRef t = LLVMTypeOf(x);
  LLVMValueRef e = vexp(c, mul(c, x, K(c, t, 2.0)));
  return sub(c, K(c, t, 1.0), fdivv(c, K(c, t, 2.0), add(c, e, K(c, t, 1.0))));
}

static LLVMValueRef activation(cg *c, int act, LLVMValueRef v) {
  LLVMTypeRef t = LLVMTypeOf(v);
  LLVMValueRef h = mul(c, v, K(c, t, 0.5));
  switch (act) {
  case TC_CG_ACT_GELU_ERF: return fma3(c, h, verf(c, mul(c, v, K(c, t, 0.70710678118654752))), h);
  case TC_CG_ACT_GELU_TANH: {
    LLVMValueRef v3 = mul(c, mul(c, v, v), v);
    LLVMValueRef u = mul(c, fma3(c, v3, K(c, t, 0.044715), v), K(c, t, 0.79788456080286536));
    return fma3(c, h, vtanh(c, u), h);
  }
  default: return v;
  }
}

/* ---- memory ---- */

static LLVMValueRef elem_ptr(cg *c, LLVMValueRef base, LLVMValueRef idx) {
  return LLVMBuildGEP2(c->b, c->f32, base, &idx, 1, "");
}
static LLVMValueRef load(cg *c, LLVMTypeRef t, LLVMValueRef base, LLVMValueRef idx) {
  LLVMValueRef v = LLVMBuildLoad2(c->b, t, elem_ptr(c, base, idx), "");
  LLVMSetAlignment(v, 4);
  return v;
}
static void store(cg *c, LLVMValueRef v, LLVMValueRef base, LLVMValueRef idx) {
  LLVMValueRef s = LLVMBuildStore(c->b, v, elem_ptr(c, base, idx));
  LLVMSetAlignment(s, 4);
}
/* Elements of type letter ty ('f' float32, 'b' int8, 'B' uint8) at base[idx]
 * as floats of t's shape. */
static LLVMValueRef load_typed(cg *c, LLVMTypeRef t, char ty, LLVMValueRef base, LLVMValueRef idx) {
  if (ty != 'b' && ty != 'B')
    return load(c, t, base, idx);
  unsigned n = lanes(t);
  LLVMTypeRef it = n == 1 ? c->i8 : LLVMVectorType(c->i8, n);
  LLVMValueRef v = LLVMBuildLoad2(c->b, it, LLVMBuildGEP2(c->b, c->i8, base, &idx, 1, ""), "");
  LLVMSetAlignment(v, 1);
  return ty == 'b' ? LLVMBuildSIToFP(c->b, v, t, "") : LLVMBuildUIToFP(c->b, v, t, "");
}

/* Stores v (floats holding integers in range for 'b' / 'B') as type ty. */
static void store_typed(cg *c, LLVMValueRef v, char ty, LLVMValueRef base, LLVMValueRef idx) {
  if (ty != 'b' && ty != 'B') {
    store(c, v, base, idx);
    return;
  }
  unsigned n = lanes(LLVMTypeOf(v));
  LLVMTypeRef it = n == 1 ? c->i8 : LLVMVectorType(c->i8, n);
  LLVMValueRef q = ty == 'b' ? LLVMBuildFPToSI(c->b, v, it, "") : LLVMBuildFPToUI(c->b, v, it, "");
  LLVMValueRef st = LLVMBuildStore(c->b, q, LLVMBuildGEP2(c->b, c->i8, base, &idx, 1, ""));
  LLVMSetAlignment(st, 1);
}

static LLVMValueRef i64c(cg *c, long long v) {
  return LLVMConstInt(c->i64, (unsigned long long)v, 1);
}

/* ---- passes over a row ---- */

enum { RED_ADD, RED_MAX };
typedef struct pass_ctx pass_ctx;
/* Element code for the elements at j (vector type t, or scalar): updates
 * acc[0..n_acc) (same type t). */
typedef void (*body_fn)(cg *c, pass_ctx *p, LLVMValueRef j, LLVMTypeRef t, LLVMValueRef *acc);

struct pass_ctx {
  const tc_cg_spec *sp;
  LLVMValueRef in[TC_EW_MAX_IN]; /* ewchain: row pointers ('F'), row bases ('R'), scalars ('S') */
  LLVMValueRef x, skip, gamma, beta, y, sum, tmp; /* row base pointers (tmp: where t lives) */
  LLVMValueRef bias;
  LLVMValueRef mean, rstd, m, inv; /* row scalars */
};

static LLVMValueRef combine(cg *c, int op, LLVMValueRef a, LLVMValueRef b) {
  return op == RED_ADD ? add(c, a, b) : fmax_keep_nan(c, a, b);
}

/* Horizontal reduction of a vector to a scalar by halving. */
static LLVMValueRef hreduce(cg *c, int op, LLVMValueRef v) {
  unsigned n = lanes(LLVMTypeOf(v));
  while (n > 1) {
    unsigned h = n / 2;
    LLVMValueRef lo[32], hi[32];
    for (unsigned i = 0; i < h; i++) {
      lo[i] = LLVMConstInt(c->i32, i, 0);
      hi[i] = LLVMConstInt(c->i32, h + i, 0);
    }
    LLVMValueRef pv = LLVMGetPoison(LLVMTypeOf(v));
    LLVMValueRef a = LLVMBuildShuffleVector(c->b, v, pv, LLVMConstVector(lo, h), "");
    LLVMValueRef b = LLVMBuildShuffleVector(c->b, v, pv, LLVMConstVector(hi, h), "");
    v = combine(c, op, a, b);
    n = h;
  }
  return LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMVectorTypeKind
             ? LLVMBuildExtractElement(c->b, v, LLVMConstInt(c->i32, 0, 0), "")
             : v;
}

/* A counted loop over [from, to) with step; phis for the accumulators. */
typedef struct loop {
  LLVMBasicBlockRef head, body;
  LLVMValueRef iv;
  LLVMValueRef acc[32];
  size_t n_acc;
} loop;

static void loop_begin(cg *c, loop *l, long long from, LLVMTypeRef acc_t, const double *init,
                       size_t n_acc) {
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
  l->body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "pass");
  LLVMBuildBr(c->b, l->body);
  LLVMPositionBuilderAtEnd(c->b, l->body);
  l->iv = LLVMBuildPhi(c->b, c->i64, "j");
  LLVMValueRef f = i64c(c, from);
  LLVMAddIncoming(l->iv, &f, &pre, 1);
  l->n_acc = n_acc;
  for (size_t k = 0; k < n_acc; k++) {
    l->acc[k] = LLVMBuildPhi(c->b, acc_t, "acc");
    LLVMValueRef v = K(c, acc_t, init[k]);
    LLVMAddIncoming(l->acc[k], &v, &pre, 1);
  }
  l->head = pre;
}

static void loop_end(cg *c, loop *l, long long step, long long to, LLVMValueRef *acc_next) {
  LLVMValueRef next = LLVMBuildAdd(c->b, l->iv, i64c(c, step), "");
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
  LLVMAddIncoming(l->iv, &next, &latch, 1);
  for (size_t k = 0; k < l->n_acc; k++)
    LLVMAddIncoming(l->acc[k], &acc_next[k], &latch, 1);
  LLVMBasicBlockRef after = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "after");
  LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, next, i64c(c, to), ""), l->body, after);
  LLVMPositionBuilderAtEnd(c->b, after);
}

/* One pass over the row; out[k] gets reduction k (op[k], from init[k]). */
static void row_pass(cg *c, pass_ctx *p, body_fn body, size_t n_acc, const int *op,
                     const double *init, LLVMValueRef *out) {
  const tc_cg_spec *sp = p->sp;
  long long W = sp->width, U = sp->unroll, step = W * U, cols = sp->cols;
  long long nvec = cols / step * step;
  LLVMValueRef res[2];
  for (size_t k = 0; k < n_acc; k++)
    res[k] = LLVMConstReal(c->f32, init[k]);
  if (nvec > 0 && W > 1) {
    LLVMTypeRef vt = LLVMVectorType(c->f32, (unsigned)W);
    double vinit[8] = {0};
    for (size_t k = 0; k < n_acc; k++)
      for (long long u = 0; u < U; u++)
        vinit[k * (size_t)U + (size_t)u] = init[k];
    loop l;
    loop_begin(c, &l, 0, vt, vinit, n_acc * (size_t)U);
    LLVMValueRef next[8];
    for (long long u = 0; u < U; u++) {
      LLVMValueRef a[2];
      for (size_t k = 0; k < n_acc; k++)
        a[k] = l.acc[k * (size_t)U + (size_t)u];
      body(c, p, LLVMBuildAdd(c->b, l.iv, i64c(c, u * W), ""), vt, a);
      for (size_t k = 0; k < n_acc; k++)
        next[k * (size_t)U + (size_t)u] = a[k];
    }
    loop_end(c, &l, step, nvec, next);
    for (size_t k = 0; k < n_acc; k++) {
      LLVMValueRef v = next[k * (size_t)U];
      for (long long u = 1; u < U; u++)
        v = combine(c, op[k], v, next[k * (size_t)U + (size_t)u]);
      res[k] = combine(c, op[k], res[k], hreduce(c, op[k], v));
    }
  } else {
    nvec = 0;
  }
  if (nvec < cols) {
    loop l;
    double zero[2] = {0, 0};
    loop_begin(c, &l, nvec, c->f32, zero, 0);
    LLVMValueRef seed[2] = {NULL, NULL};
    for (size_t k = 0; k < n_acc; k++) { /* the scalar loop carries the vector result on */
      seed[k] = LLVMBuildPhi(c->b, c->f32, "acc");
      LLVMAddIncoming(seed[k], &res[k], &l.head, 1);
    }
    LLVMValueRef a[2] = {seed[0], seed[1]};
    body(c, p, l.iv, c->f32, a);
    LLVMValueRef next = LLVMBuildAdd(c->b, l.iv, i64c(c, 1), "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
    LLVMAddIncoming(l.iv, &next, &latch, 1);
    for (size_t k = 0; k < n_acc; k++)
      LLVMAddIncoming(seed[k], &a[k], &latch, 1);
    LLVMBasicBlockRef after = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "after");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, next, i64c(c, cols), ""), l.body, after);
    LLVMPositionBuilderAtEnd(c->b, after);
    for (size_t k = 0; k < n_acc; k++)
      res[k] = a[k];
  }
  for (size_t k = 0; k < n_acc; k++)
    out[k] = res[k];
}

/* ---- kernel bodies ---- */

static void bias_act_body(cg *c, pass_ctx *p, LLVMValueRef j, LLVMTypeRef t, LLVMValueRef *acc) {
  (void)acc;
  LLVMValueRef v = load(c, t, p->x, j);
  if (p->sp->flags & TC_CG_F_BIAS)
    v = add(c, v, load(c, t, p->bias, j));
  store(c, activation(c, p->sp->act, v), p->y, j);
}

static void softmax_max(cg *c, pass_ctx *p, LLVMValueRef j, LLVMTypeRef t, LLVMValueRef *acc) {
  acc[0] = fmax_keep_nan(c, acc[0], load(c, t, p->x, j));
}
static void softmax_exp(cg *c, pass_ctx *p, LLVMValueRef j, LLVMTypeRef t, LLVMValueRef *acc) {
  LLVMValueRef e = vexp(c, sub(c, load(c, t, p->x, j), splat(c, t, p->m)));
  store(c, e, p->y, j);
  acc[0] = add(c, acc[0], e);
}
static void softmax_scale(cg *c, pass_ctx *p, LLVMValueRef j, LLVMTypeRef t, LLVMValueRef *acc) {
  (void)acc;
  store(c, mul(c, load(c, t, p->y, j), splat(c, t, p->inv)), p->y, j);
}

static LLVMValueRef sigmoid(cg *c, LLVMValueRef v) {
  LLVMTypeRef t = LLVMTypeOf(v);
  return fdivv(c, K(c, t, 1.0), add(c, K(c, t, 1.0), vexp(c, LLVMBuildFNeg(c->b, v, ""))));
}
static LLVMValueRef lt0(cg *c, LLVMValueRef v) {
  return LLVMBuildFCmp(c->b, LLVMRealOLT, v, K(c, LLVMTypeOf(v), 0.0), "");
}
/* min(max(v, lo), hi) */
static LLVMValueRef clamp(cg *c, LLVMValueRef v, LLVMValueRef lo, LLVMValueRef hi) {
  if (lo)
    v = fmax_keep_nan(c, lo, v);
  return hi ? fmin_keep_nan(c, hi, v) : v;
}

/* One element of an elementwise chain (tc_ew_prog). */
static void chain_body(cg *c, pass_ctx *p, LLVMValueRef j, LLVMTypeRef t, LLVMValueRef *acc) {
  (void)acc;
  const tc_ew_prog *g = &p->sp->prog;
  LLVMValueRef v[TC_EW_MAX_IN + TC_EW_MAX_OPS];
  for (int i = 0; i < g->n_in; i++)
    v[i] = g->ins[i] == 'S' ? splat(c, t, p->in[i])
                            : load_typed(c, t, g->types[0] ? g->types[i] : 'f', p->in[i], j);
  for (int k = 0; k < g->n_ops; k++) {
    const tc_ew_op *o = &g->ops[k];
    LLVMValueRef a = v[o->a], b = o->b >= 0 ? v[o->b] : NULL, d = o->c >= 0 ? v[o->c] : NULL, r;
    switch (o->op) {
    case TC_EW_ADD: r = add(c, a, b); break;
    case TC_EW_SUB: r = sub(c, a, b); break;
    case TC_EW_MUL: r = mul(c, a, b); break;
    case TC_EW_DIV: r = fdivv(c, a, b); break;
    case TC_EW_MAX: r = fmax_keep_nan(c, a, b); break;
    case TC_EW_MIN: r = fmin_keep_nan(c, a, b); break;
    case TC_EW_NEG: r = LLVMBuildFNeg(c->b, a, ""); break;
    case TC_EW_ABS: r = intrin(c, "llvm.fabs", t, &a, 1); break;
    case TC_EW_RELU: r = LLVMBuildSelect(c->b, lt0(c, a), K(c, t, 0.0), a, ""); break;
    case TC_EW_SIGMOID: r = sigmoid(c, a); break;
    case TC_EW_TANH: r = vtanh(c, a); break;
    case TC_EW_EXP: r = vexp(c, a); break;
    case TC_EW_SQRT: r = intrin(c, "llvm.sqrt", t, &a, 1); break;
    case TC_EW_RECIP: r = fdivv(c, K(c, t, 1.0), a); break;
    case TC_EW_ERF: r = verf(c, a); break;
    case TC_EW_GELU_ERF: r = activation(c, TC_CG_ACT_GELU_ERF, a); break;
    case TC_EW_GELU_TANH: r = activation(c, TC_CG_ACT_GELU_TANH, a); break;
    case TC_EW_HARDSWISH:
      r = mul(c, a,
              clamp(c, fma3(c, a, K(c, t, 1.0 / 6.0), K(c, t, 0.5)), K(c, t, 0.0), K(c, t, 1.0)));
      break;
    case TC_EW_LEAKY:
      r = LLVMBuildSelect(c->b, lt0(c, a), mul(c, a, K(c, t, o->alpha)), a, "");
      break;
    case TC_EW_HSIGMOID:
      r = clamp(c, fma3(c, a, K(c, t, o->alpha), K(c, t, o->beta)), K(c, t, 0.0), K(c, t, 1.0));
      break;
    case TC_EW_QUICKGELU: r = mul(c, a, sigmoid(c, mul(c, a, K(c, t, o->alpha)))); break;
    case TC_EW_ELU:
      r = LLVMBuildSelect(c->b, lt0(c, a),
                          mul(c, sub(c, vexp(c, a), K(c, t, 1.0)), K(c, t, o->alpha)), a, "");
      break;
    case TC_EW_CLIP: r = clamp(c, a, b, d); break;
    case TC_EW_CLIPC: r = clamp(c, a, K(c, t, o->alpha), K(c, t, o->beta)); break;
    case TC_EW_DQ: r = mul(c, d ? sub(c, a, d) : a, b); break;
    case TC_EW_Q: {
      LLVMValueRef q = fdivv(c, a, b);
      q = intrin(c, "llvm.rint", t, &q, 1);
      if (d)
        q = add(c, q, d);
      bool sgn = o->c >= 0 && g->types[0] && g->types[o->c] == 'b';
      r = clamp(c, q, K(c, t, sgn ? -128.0 : 0.0), K(c, t, sgn ? 127.0 : 255.0));
      break;
    }
    default: r = a; break;
    }
    v[g->n_in + k] = r;
  }
  store_typed(c, v[g->n_in + g->n_ops - 1], g->out_type ? g->out_type : 'f', p->y, j);
}

/* Pass 1: t = x (+ skip), kept in tmp when it differs from x; sum (or sum
 * of squares for RMS). */
static void ln_sum(cg *c, pass_ctx *p, LLVMValueRef j, LLVMTypeRef t, LLVMValueRef *acc) {
  LLVMValueRef v = load(c, t, p->x, j);
  if (p->sp->flags & TC_CG_F_SKIP) {
    v = add(c, v, load(c, t, p->skip, j));
    store(c, v, p->tmp, j);
  }
  acc[0] = p->sp->flags & TC_CG_F_RMS ? fma3(c, v, v, acc[0]) : add(c, acc[0], v);
}
static void ln_var(cg *c, pass_ctx *p, LLVMValueRef j, LLVMTypeRef t, LLVMValueRef *acc) {
  LLVMValueRef d = sub(c, load(c, t, p->tmp, j), splat(c, t, p->mean));
  acc[0] = fma3(c, d, d, acc[0]);
}
static void ln_out(cg *c, pass_ctx *p, LLVMValueRef j, LLVMTypeRef t, LLVMValueRef *acc) {
  (void)acc;
  LLVMValueRef v = load(c, t, p->tmp, j);
  if (!(p->sp->flags & TC_CG_F_RMS))
    v = sub(c, v, splat(c, t, p->mean));
  v = mul(c, mul(c, v, splat(c, t, p->rstd)), load(c, t, p->gamma, j));
  if (p->sp->flags & TC_CG_F_BETA)
    v = add(c, v, load(c, t, p->beta, j));
  store(c, v, p->y, j);
}

/* A kernel function (tc_cg_row_fn) named sp->sym: its parameters, and the
 * entry, row-loop and exit blocks, the builder at the end of entry. */
typedef struct kframe {
  LLVMValueRef in, out, params, lo, hi;
  LLVMBasicBlockRef entry, rows, done;
} kframe;

static kframe kernel_frame(cg *c, const tc_cg_spec *sp) {
  LLVMTypeRef args[5] = {c->ptr, c->ptr, c->ptr, c->i64, c->i64};
  LLVMTypeRef ft = LLVMFunctionType(LLVMVoidTypeInContext(c->ctx), args, 5, 0);
  c->fn = LLVMAddFunction(c->mod, sp->sym, ft);
  LLVMSetLinkage(c->fn, LLVMExternalLinkage);
  unsigned nounwind = LLVMGetEnumAttributeKindForName("nounwind", 8);
  LLVMAddAttributeAtIndex(c->fn, LLVMAttributeFunctionIndex,
                          LLVMCreateEnumAttribute(c->ctx, nounwind, 0));
  kframe f = {.in = LLVMGetParam(c->fn, 0),
              .out = LLVMGetParam(c->fn, 1),
              .params = LLVMGetParam(c->fn, 2),
              .lo = LLVMGetParam(c->fn, 3),
              .hi = LLVMGetParam(c->fn, 4)};
  f.entry = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "entry");
  f.rows = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "row");
  f.done = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "done");
  LLVMPositionBuilderAtEnd(c->b, f.entry);
  return f;
}

/* Closes the row loop (row index r) and returns. */
static void kernel_end(cg *c, const kframe *f, LLVMValueRef r) {
  LLVMValueRef rn = LLVMBuildAdd(c->b, r, i64c(c, 1), "");
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
  LLVMAddIncoming(r, &rn, &latch, 1);
  LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, rn, f->hi, ""), f->rows, f->done);
  LLVMPositionBuilderAtEnd(c->b, f->done);
  LLVMBuildRetVoid(c->b);
}

static void build_attention(cg *c, const tc_cg_spec *sp);

/* The row loop around the kind's passes. */
static void build_kernel(cg *c, const tc_cg_spec *sp) {
  if (sp->kind == TC_CG_ATTENTION) {
    build_attention(c, sp);
    return;
  }
  kframe f = kernel_frame(c, sp);
  LLVMValueRef pin = f.in, pout = f.out, pparams = f.params, lo = f.lo, hi = f.hi;
  LLVMBasicBlockRef entry = f.entry, rows = f.rows, done = f.done;
  LLVMValueRef base_in[TC_EW_MAX_IN], base_out[2];
  int n_in = sp->kind == TC_CG_EWCHAIN ? sp->prog.n_in : 4;
  for (int i = 0; i < n_in; i++) {
    LLVMValueRef idx = i64c(c, i);
    base_in[i] = LLVMBuildLoad2(c->b, c->ptr, LLVMBuildGEP2(c->b, c->ptr, pin, &idx, 1, ""), "");
  }
  for (int i = 0; i < 2; i++) {
    LLVMValueRef idx = i64c(c, i);
    base_out[i] = LLVMBuildLoad2(c->b, c->ptr, LLVMBuildGEP2(c->b, c->ptr, pout, &idx, 1, ""), "");
  }
  LLVMValueRef eps =
      sp->kind == TC_CG_EWCHAIN ? NULL : LLVMBuildLoad2(c->b, c->f32, pparams, "eps");
  LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, lo, hi, ""), rows, done);

  LLVMPositionBuilderAtEnd(c->b, rows);
  LLVMValueRef r = LLVMBuildPhi(c->b, c->i64, "r");
  LLVMAddIncoming(r, &lo, &entry, 1);
  LLVMValueRef off = LLVMBuildMul(c->b, r, i64c(c, sp->cols), "");
  pass_ctx p = {.sp = sp};
  p.x = elem_ptr(c, base_in[0], off);
  p.y = elem_ptr(c, base_out[0], off);
  LLVMValueRef zero = i64c(c, 0);
  int op_add = RED_ADD, op_max = RED_MAX;
  double z = 0.0, ninf = -INFINITY;
  LLVMValueRef red;
  LLVMValueRef colsf = LLVMConstReal(c->f32, (double)sp->cols);
  switch (sp->kind) {
  case TC_CG_BIAS_ACT:
    p.bias = elem_ptr(c, base_in[1], zero);
    row_pass(c, &p, bias_act_body, 0, NULL, NULL, NULL);
    break;
  case TC_CG_EWCHAIN:
    for (int i = 0; i < n_in; i++) {
      char ty = sp->prog.types[0] ? sp->prog.types[i] : 'f';
      bool narrow = ty == 'b' || ty == 'B';
      p.in[i] = sp->prog.ins[i] == 'F'
                    ? (narrow ? LLVMBuildGEP2(c->b, c->i8, base_in[i], &off, 1, "")
                              : elem_ptr(c, base_in[i], off))
                : sp->prog.ins[i] == 'R' ? base_in[i]
                                         : load_typed(c, c->f32, ty, base_in[i], zero);
    }
    if (sp->prog.out_type == 'b' || sp->prog.out_type == 'B')
      p.y = LLVMBuildGEP2(c->b, c->i8, base_out[0], &off, 1, "");
    row_pass(c, &p, chain_body, 0, NULL, NULL, NULL);
    break;
  case TC_CG_SOFTMAX:
    row_pass(c, &p, softmax_max, 1, &op_max, &ninf, &red);
    p.m = red;
    row_pass(c, &p, softmax_exp, 1, &op_add, &z, &red);
    p.inv = fdivv(c, LLVMConstReal(c->f32, 1.0), red);
    row_pass(c, &p, softmax_scale, 0, NULL, NULL, NULL);
    break;
  case TC_CG_LAYERNORM: {
    p.skip = elem_ptr(c, base_in[1], off);
    p.gamma = elem_ptr(c, base_in[2], zero);
    p.beta = elem_ptr(c, base_in[3], zero);
    p.tmp = !(sp->flags & TC_CG_F_SKIP) ? p.x
            : (sp->flags & TC_CG_F_SUM) ? elem_ptr(c, base_out[1], off)
                                        : p.y;
    row_pass(c, &p, ln_sum, 1, &op_add, &z, &red);
    LLVMValueRef ms = fdivv(c, red, colsf);
    if (sp->flags & TC_CG_F_RMS) {
      p.mean = LLVMConstReal(c->f32, 0.0);
    } else {
      p.mean = ms;
      row_pass(c, &p, ln_var, 1, &op_add, &z, &red);
      ms = fdivv(c, red, colsf);
    }
    LLVMValueRef sq = add(c, ms, eps);
    p.rstd = fdivv(c, LLVMConstReal(c->f32, 1.0), intrin(c, "llvm.sqrt", c->f32, &sq, 1));
    row_pass(c, &p, ln_out, 0, NULL, NULL, NULL);
    break;
  }
  default: break;
  }
  kernel_end(c, &f, r);
}

/* ---- attention ---- */

/* A <w x i1> constant with the first n lanes set. */
static LLVMValueRef lane_mask(cg *c, unsigned w, unsigned n) {
  LLVMTypeRef i1 = LLVMInt1TypeInContext(c->ctx);
  LLVMValueRef e[64];
  for (unsigned i = 0; i < w; i++)
    e[i] = LLVMConstInt(i1, i < n, 0);
  return LLVMConstVector(e, w);
}
/* A call of llvm.masked.load / llvm.masked.store on vectors of type t. */
static LLVMValueRef masked_intrin(cg *c, const char *name, LLVMTypeRef t, LLVMValueRef *args,
                                  unsigned n) {
  LLVMTypeRef ov[2] = {t, c->ptr};
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->mod, id, ov, 2);
  return LLVMBuildCall2(c->b, LLVMIntrinsicGetType(c->ctx, id, ov, 2), f, args, n, "");
}
/* The first n lanes of vector type t at base[idx] (the rest 0; nothing
 * past them is read), or a plain load when n covers t. */
static LLVMValueRef load_part(cg *c, LLVMTypeRef t, LLVMValueRef base, LLVMValueRef idx,
                              unsigned n) {
  unsigned w = lanes(t);
  if (n >= w)
    return load(c, t, base, idx);
  LLVMValueRef args[4] = {elem_ptr(c, base, idx), LLVMConstInt(c->i32, 4, 0), lane_mask(c, w, n),
                          K(c, t, 0.0)};
  return masked_intrin(c, "llvm.masked.load", t, args, 4);
}
/* Stores the first n lanes of v at base[idx] (all of them when n covers v). */
static void store_part(cg *c, LLVMValueRef v, LLVMValueRef base, LLVMValueRef idx, unsigned n) {
  LLVMTypeRef t = LLVMTypeOf(v);
  unsigned w = lanes(t);
  if (n >= w) {
    store(c, v, base, idx);
    return;
  }
  LLVMValueRef args[4] = {v, elem_ptr(c, base, idx), LLVMConstInt(c->i32, 4, 0),
                          lane_mask(c, w, n)};
  masked_intrin(c, "llvm.masked.store", t, args, 4);
}

static LLVMValueRef imul(cg *c, LLVMValueRef a, long long k) {
  return LLVMBuildMul(c->b, a, i64c(c, k), "");
}
static LLVMValueRef iadd(cg *c, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildAdd(c->b, a, b, "");
}

/* What one (batch, head) row of an attention kernel works with. */
typedef struct att_ctx {
  const tc_cg_spec *sp;
  LLVMTypeRef t; /* the vector type (float when width 1) */
  long long W, L, Lp, NJ, D, Dv, QS, VS, YS;
  LLVMValueRef q, v, m, y, kt, p;           /* bases: Q, V, mask, Y, transposed K, scores */
  LLVMValueRef qoff, voff, yoff, moff, ms2; /* element offsets of this head; mask query stride */
  LLVMValueRef scale;
} att_ctx;

/* Scores of query rows i0 .. i0+R-1 against nj key vectors from key jt
 * (an i64 value): scale * q . k (+ mask), -inf where masked (causal, or
 * padding past the last key), stored to the score rows. */
static void att_scores(cg *c, const att_ctx *a, int R, LLVMValueRef i0, LLVMValueRef jt, int nj,
                       bool last_partial) {
  LLVMTypeRef t = a->t;
  double zeros[32] = {0};
  loop l;
  loop_begin(c, &l, 0, t, zeros, (size_t)(R * nj));
  LLVMValueRef kv[4], next[32];
  for (int jj = 0; jj < nj; jj++)
    kv[jj] = load(c, t, a->kt, iadd(c, iadd(c, imul(c, l.iv, a->Lp), jt), i64c(c, jj * a->W)));
  for (int r = 0; r < R; r++) {
    LLVMValueRef row = iadd(c, a->qoff, imul(c, iadd(c, i0, i64c(c, r)), a->QS));
    LLVMValueRef qs = splat(c, t, load(c, c->f32, a->q, iadd(c, row, l.iv)));
    for (int jj = 0; jj < nj; jj++)
      next[r * nj + jj] = fma3(c, qs, kv[jj], l.acc[r * nj + jj]);
  }
  loop_end(c, &l, 1, a->D, next);
  LLVMValueRef ninf = K(c, t, -INFINITY);
  unsigned w = (unsigned)a->W;
  for (int r = 0; r < R; r++) {
    LLVMValueRef qi = iadd(c, i0, i64c(c, r));
    for (int jj = 0; jj < nj; jj++) {
      LLVMValueRef j0 = iadd(c, jt, i64c(c, jj * a->W));
      bool part = last_partial && jj == nj - 1;
      unsigned valid = part ? (unsigned)(a->L % a->W) : w;
      LLVMValueRef s = mul(c, next[r * nj + jj], splat(c, t, a->scale));
      if (a->sp->flags & TC_CG_F_MASK)
        s = add(c, s,
                load_part(c, t, a->m,
                          iadd(c, iadd(c, a->moff, LLVMBuildMul(c->b, qi, a->ms2, "")), j0),
                          valid));
      if (a->sp->flags & TC_CG_F_CAUSAL) { /* key index > query index: masked */
        LLVMTypeRef it = int_like(c, t);
        LLVMValueRef keys = splat(c, it, LLVMBuildTrunc(c->b, j0, c->i32, ""));
        if (w > 1) {
          LLVMValueRef idx[64];
          for (unsigned e = 0; e < w; e++)
            idx[e] = LLVMConstInt(c->i32, e, 0);
          keys = LLVMBuildAdd(c->b, keys, LLVMConstVector(idx, w), "");
        }
        LLVMValueRef qv = splat(c, it, LLVMBuildTrunc(c->b, qi, c->i32, ""));
        s = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, keys, qv, ""), ninf, s, "");
      }
      if (part) /* the lanes past the last key */
        s = LLVMBuildSelect(c->b, lane_mask(c, w, valid), s, ninf, "");
      store(c, s, a->p, iadd(c, i64c(c, r * a->Lp), j0));
    }
  }
}

/* Query rows i0 .. i0+R-1 of one head: scores, softmax, P V. */
static void att_block(cg *c, const att_ctx *a, int R, LLVMValueRef i0) {
  LLVMTypeRef t = a->t;
  int J = 16 / R < 1 ? 1 : 16 / R > 4 ? 4 : 16 / R;
  if (J > a->NJ)
    J = (int)a->NJ;
  bool partial = a->L % a->W != 0;
  long long nfull = partial ? (a->NJ - 1) / J : a->NJ / J, rem = a->NJ - nfull * J;
  if (nfull > 0) {
    loop l;
    loop_begin(c, &l, 0, t, NULL, 0);
    att_scores(c, a, R, i0, l.iv, J, false);
    loop_end(c, &l, J * a->W, nfull * J * a->W, NULL);
  }
  if (rem > 0)
    att_scores(c, a, R, i0, i64c(c, nfull * J * a->W), (int)rem, partial);
  /* softmax of each score row, left unnormalized; inv[r] = 1 / sum, or 0
   * when every key is masked (zeros, as libtacort's kernel) */
  LLVMValueRef inv[8];
  for (int r = 0; r < R; r++) {
    LLVMValueRef row = i64c(c, r * a->Lp);
    double ninf = -INFINITY, z = 0;
    loop l;
    loop_begin(c, &l, 0, t, &ninf, 1);
    LLVMValueRef mx = fmax_keep_nan(c, l.acc[0], load(c, t, a->p, iadd(c, row, l.iv)));
    loop_end(c, &l, a->W, a->Lp, &mx);
    LLVMValueRef m = hreduce(c, RED_MAX, mx);
    LLVMValueRef dead = LLVMBuildFCmp(c->b, LLVMRealOEQ, m, LLVMConstReal(c->f32, -INFINITY), "");
    LLVMValueRef m0 = LLVMBuildSelect(c->b, dead, LLVMConstReal(c->f32, 0.0), m, "");
    loop_begin(c, &l, 0, t, &z, 1);
    LLVMValueRef sv = load(c, t, a->p, iadd(c, row, l.iv));
    LLVMValueRef e = vexp(c, sub(c, sv, splat(c, t, m0)));
    e = LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOEQ, sv, K(c, t, -INFINITY), ""),
                        K(c, t, 0.0), e, "");
    store(c, e, a->p, iadd(c, row, l.iv));
    LLVMValueRef sum = add(c, l.acc[0], e);
    loop_end(c, &l, a->W, a->Lp, &sum);
    LLVMValueRef tot = hreduce(c, RED_ADD, sum);
    inv[r] = LLVMBuildSelect(c->b, dead, LLVMConstReal(c->f32, 0.0),
                             fdivv(c, LLVMConstReal(c->f32, 1.0), tot), "");
  }
  /* Y rows = P V / sum, in tiles of up to nvt vectors of the value head;
   * a value head narrower than the width takes the narrowest vector (4 or
   * 8 lanes) that holds it: fewer idle lanes, and narrower FMAs issue more
   * per cycle */
  long long WV = a->W;
  while (WV > 4 && a->Dv <= WV / 2)
    WV /= 2;
  LLVMTypeRef vt = WV > 1 ? LLVMVectorType(c->f32, (unsigned)WV) : c->f32;
  long long NV = (a->Dv + WV - 1) / WV;
  int nvt = 16 / R < 1 ? 1 : 16 / R > 4 ? 4 : 16 / R;
  for (long long v0 = 0; v0 < NV; v0 += nvt) {
    int nv = (int)(NV - v0 < nvt ? NV - v0 : nvt);
    double zeros[32] = {0};
    loop l;
    loop_begin(c, &l, 0, vt, zeros, (size_t)(R * nv));
    LLVMValueRef vrow[4], next[32];
    LLVMValueRef vbase = iadd(c, a->voff, imul(c, l.iv, a->VS));
    for (int vv = 0; vv < nv; vv++) {
      long long col = (v0 + vv) * WV;
      unsigned valid = (unsigned)(a->Dv - col < WV ? a->Dv - col : WV);
      vrow[vv] = load_part(c, vt, a->v, iadd(c, vbase, i64c(c, col)), valid);
    }
    for (int r = 0; r < R; r++) {
      LLVMValueRef pr = splat(c, vt, load(c, c->f32, a->p, iadd(c, i64c(c, r * a->Lp), l.iv)));
      for (int vv = 0; vv < nv; vv++)
        next[r * nv + vv] = fma3(c, pr, vrow[vv], l.acc[r * nv + vv]);
    }
    loop_end(c, &l, 1, a->L, next);
    for (int r = 0; r < R; r++) {
      LLVMValueRef yrow = iadd(c, a->yoff, imul(c, iadd(c, i0, i64c(c, r)), a->YS));
      for (int vv = 0; vv < nv; vv++) {
        long long col = (v0 + vv) * WV;
        unsigned valid = (unsigned)(a->Dv - col < WV ? a->Dv - col : WV);
        store_part(c, mul(c, next[r * nv + vv], splat(c, vt, inv[r])), a->y,
                   iadd(c, yrow, i64c(c, col)), valid);
      }
    }
  }
}

/* An attention kernel: rows [lo, hi) are (batch, head) pairs. Per row the
 * head's keys are transposed into a stack buffer (zero-padded to a whole
 * number of vectors), then query rows go in blocks of R = 2 * unroll:
 * their scores against R x J key vectors at a time (broadcast q, FMA with
 * K^T), the masked softmax in place, and P V accumulated in registers over
 * the keys, scaled by 1 / sum on the way out. */
static void build_attention(cg *c, const tc_cg_spec *sp) {
  kframe f = kernel_frame(c, sp);
  LLVMValueRef pin = f.in, pout = f.out, pparams = f.params, lo = f.lo, hi = f.hi;
  LLVMBasicBlockRef entry = f.entry, rows = f.rows, done = f.done;
  att_ctx a = {.sp = sp, .W = sp->width, .L = sp->cols, .D = sp->att_d, .Dv = sp->att_dv};
  a.t = a.W > 1 ? LLVMVectorType(c->f32, (unsigned)a.W) : c->f32;
  a.Lp = (a.L + a.W - 1) / a.W * a.W;
  a.NJ = a.Lp / a.W;
  long long H = sp->att_h, HKV = sp->att_kvh, G = H / HKV, Sq = sp->att_q;
  a.QS = H * a.D;
  a.VS = HKV * a.Dv;
  a.YS = H * a.Dv;
  LLVMValueRef base[5];
  for (int i = 0; i < 5; i++) {
    LLVMValueRef idx = i64c(c, i);
    base[i] = LLVMBuildLoad2(c->b, c->ptr, LLVMBuildGEP2(c->b, c->ptr, pin, &idx, 1, ""), "");
  }
  LLVMValueRef zero = i64c(c, 0);
  a.q = base[0];
  a.v = base[2];
  a.m = base[3];
  a.y = LLVMBuildLoad2(c->b, c->ptr, pout, "");
  a.scale = LLVMBuildLoad2(c->b, c->f32, pparams, "scale");
  LLVMValueRef ms[3] = {zero, zero, zero};
  if (sp->flags & TC_CG_F_MASK)
    for (int i = 0; i < 3; i++) {
      LLVMValueRef idx = i64c(c, i);
      ms[i] = LLVMBuildLoad2(c->b, c->i64, LLVMBuildGEP2(c->b, c->i64, base[4], &idx, 1, ""), "");
    }
  a.ms2 = ms[2];
  LLVMValueRef kt = LLVMBuildAlloca(c->b, LLVMArrayType(c->f32, (unsigned)(a.D * a.Lp)), "kt");
  LLVMValueRef pr = LLVMBuildAlloca(c->b, LLVMArrayType(c->f32, (unsigned)(8 * a.Lp)), "p");
  LLVMSetAlignment(kt, 64);
  LLVMSetAlignment(pr, 64);
  a.kt = kt;
  a.p = pr;
  LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, lo, hi, ""), rows, done);

  LLVMPositionBuilderAtEnd(c->b, rows);
  LLVMValueRef r = LLVMBuildPhi(c->b, c->i64, "r");
  LLVMAddIncoming(r, &lo, &entry, 1);
  LLVMValueRef bi = LLVMBuildUDiv(c->b, r, i64c(c, H), ""),
               h = LLVMBuildURem(c->b, r, i64c(c, H), "");
  LLVMValueRef hk = LLVMBuildUDiv(c->b, h, i64c(c, G), "");
  a.qoff = imul(c, iadd(c, imul(c, bi, Sq * H), h), a.D);
  a.yoff = imul(c, iadd(c, imul(c, bi, Sq * H), h), a.Dv);
  LLVMValueRef koff = imul(c, iadd(c, imul(c, bi, a.L * HKV), hk), a.D);
  a.voff = imul(c, iadd(c, imul(c, bi, a.L * HKV), hk), a.Dv);
  a.moff = iadd(c, LLVMBuildMul(c->b, bi, ms[0], ""), LLVMBuildMul(c->b, h, ms[1], ""));
  /* K^T of this head: kt[d * Lp + j] = K[j][d], zeros past the last key */
  {
    loop lj;
    loop_begin(c, &lj, 0, c->f32, NULL, 0);
    LLVMValueRef krow = iadd(c, koff, imul(c, lj.iv, HKV * a.D));
    loop ld;
    loop_begin(c, &ld, 0, c->f32, NULL, 0);
    store(c, load(c, c->f32, base[1], iadd(c, krow, ld.iv)), kt,
          iadd(c, imul(c, ld.iv, a.Lp), lj.iv));
    loop_end(c, &ld, 1, a.D, NULL);
    loop_end(c, &lj, 1, a.L, NULL);
    if (a.Lp > a.L) {
      loop_begin(c, &ld, 0, c->f32, NULL, 0);
      for (long long j = a.L; j < a.Lp; j++)
        store(c, LLVMConstReal(c->f32, 0.0), kt, iadd(c, imul(c, ld.iv, a.Lp), i64c(c, j)));
      loop_end(c, &ld, 1, a.D, NULL);
    }
  }
  int R = 2 * sp->unroll;
  if (R > 8)
    R = 8;
  long long nb = Sq / R;
  if (nb > 0) {
    loop l;
    loop_begin(c, &l, 0, c->f32, NULL, 0);
    att_block(c, &a, R, l.iv);
    loop_end(c, &l, R, nb * R, NULL);
  }
  if (nb * R < Sq) {
    loop l;
    loop_begin(c, &l, nb * R, c->f32, NULL, 0);
    att_block(c, &a, 1, l.iv);
    loop_end(c, &l, 1, Sq, NULL);
  }
  kernel_end(c, &f, r);
}

/* ---- target, passes, object, link ---- */

static bool is_native(const char *cpu) { return !cpu || !*cpu || !strcmp(cpu, "native"); }

static void target_names(const char *cpu, char **name, char **features) {
  if (is_native(cpu)) {
    *name = LLVMGetHostCPUName();
    *features = LLVMGetHostCPUFeatures();
  } else {
    *name = LLVMCreateMessage(cpu);
    *features = LLVMCreateMessage("");
  }
}

void tc_cg_cpu_key(const char *cpu, char *buf, size_t cap) {
  char *name, *feat;
  target_names(cpu, &name, &feat);
  uint64_t h = 1469598103934665603ull; /* FNV-1a of the feature string */
  for (const char *s = feat; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  snprintf(buf, cap, "%s/%016llx", name, (unsigned long long)h);
  LLVMDisposeMessage(name);
  LLVMDisposeMessage(feat);
}

void tc_cg_cpu_features(const char *cpu, char *buf, size_t cap) {
  if (cap)
    buf[0] = 0;
  if (!is_native(cpu))
    return;
  char *feat = LLVMGetHostCPUFeatures();
  size_t used = 0;
  for (const char *p = feat; *p;) {
    size_t len = strcspn(p, ",");
    if (*p == '+')
      for (size_t i = 0; tc_cpu_feature_names[i]; i++) {
        const char *f = tc_cpu_feature_names[i];
        if (strlen(f) == len - 1 && !strncmp(p + 1, f, len - 1)) {
          int n = snprintf(buf + used, cap - used, "%s%s", used ? "," : "", f);
          if (n > 0 && (size_t)n < cap - used)
            used += (size_t)n;
        }
      }
    p += len + (p[len] == ',');
  }
  LLVMDisposeMessage(feat);
}

int tc_cg_native_width(const char *cpu) {
  if (!is_native(cpu))
    return 8;
  char *feat = LLVMGetHostCPUFeatures();
  int w = strstr(feat, "+avx512f") ? 16 : strstr(feat, "+avx") ? 8 : 4;
  LLVMDisposeMessage(feat);
  return w;
}

static int run_linker(const char *obj, const char *so, char *why, size_t cap) {
  char *argv[] = {"ld", "-shared",  "-z",        "noexecstack", "--hash-style=gnu",
                  "-o", (char *)so, (char *)obj, NULL};
  pid_t pid;
  int rc = posix_spawnp(&pid, "ld", NULL, NULL, argv, environ);
  if (rc) {
    snprintf(why, cap, "cannot run the linker (ld): %s", strerror(rc));
    return 1;
  }
  int status = 0;
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
    snprintf(why, cap, "the linker (ld) failed on %s", obj);
    return 1;
  }
  return 0;
}

/* An ewchain program is well formed: operands refer to inputs or earlier
 * ops, every input has a kind. */
static bool prog_ok(const tc_cg_spec *sp) {
  const tc_ew_prog *g = &sp->prog;
  if (sp->kind != TC_CG_EWCHAIN)
    return true;
  if (g->n_in < 1 || g->n_in > TC_EW_MAX_IN || g->n_ops < 1 || g->n_ops > TC_EW_MAX_OPS ||
      (int)strlen(g->ins) != g->n_in || strspn(g->ins, "FRS") != strlen(g->ins))
    return false;
  if (!tc_ew_types_ok(g))
    return false;
  for (int k = 0; k < g->n_ops; k++) {
    const tc_ew_op *o = &g->ops[k];
    int lim = g->n_in + k;
    bool two = o->op >= TC_EW_ADD && o->op <= TC_EW_MIN;
    if (o->op < TC_EW_ADD || o->op >= TC_EW_N_OPS || o->a < 0 || o->a >= lim || o->b >= lim ||
        o->c >= lim || (two && o->b < 0))
      return false;
  }
  return true;
}

/* An attention spec's sizes are within what the kernel keeps on its stack. */
static bool att_ok(const tc_cg_spec *sp) {
  if (sp->kind != TC_CG_ATTENTION)
    return true;
  long long lp = (sp->cols + 15) / 16 * 16;
  return sp->att_q > 0 && sp->att_d > 0 && sp->att_dv > 0 && sp->att_h > 0 && sp->att_kvh > 0 &&
         sp->att_h % sp->att_kvh == 0 && sp->cols <= TC_CG_ATT_MAX_KEYS &&
         lp * sp->att_d <= TC_CG_ATT_MAX_KT;
}

int tc_cg_build_library(const tc_cg_spec *specs, size_t n, const char *cpu, const char *so_path,
                        char *why, size_t why_cap) {
  static int inited;
  if (!inited) {
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
    inited = 1;
  }
  for (size_t i = 0; i < n; i++) {
    const tc_cg_spec *sp = &specs[i];
    bool ok_w = sp->width == 1 || sp->width == 4 || sp->width == 8 || sp->width == 16;
    if (!ok_w || sp->unroll < 1 || sp->unroll > 4 || sp->cols <= 0 || !sp->sym[0] ||
        sp->kind < TC_CG_BIAS_ACT || sp->kind > TC_CG_ATTENTION || !prog_ok(sp) || !att_ok(sp)) {
      snprintf(why, why_cap, "kernel %zu: unsupported spec", i);
      return 1;
    }
  }
  cg c = {0};
  c.ctx = LLVMContextCreate();
  c.mod = LLVMModuleCreateWithNameInContext("tacoc_kernels", c.ctx);
  c.b = LLVMCreateBuilderInContext(c.ctx);
  c.f32 = LLVMFloatTypeInContext(c.ctx);
  c.i8 = LLVMInt8TypeInContext(c.ctx);
  c.i32 = LLVMInt32TypeInContext(c.ctx);
  c.i64 = LLVMInt64TypeInContext(c.ctx);
  c.ptr = LLVMPointerTypeInContext(c.ctx, 0);
  for (size_t i = 0; i < n; i++)
    build_kernel(&c, &specs[i]);
  int rc = 1;
  char *msg = NULL, *triple = LLVMGetDefaultTargetTriple(), *name, *feat;
  target_names(cpu, &name, &feat);
  LLVMTargetRef target;
  LLVMTargetMachineRef tm = NULL;
  char obj[4200] = "";
  if (LLVMVerifyModule(c.mod, LLVMReturnStatusAction, &msg)) {
    snprintf(why, why_cap, "generated IR does not verify: %.300s", msg);
    goto out;
  }
  LLVMDisposeMessage(msg);
  msg = NULL;
  if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
    snprintf(why, why_cap, "no LLVM target for %s: %.200s", triple, msg);
    goto out;
  }
  tm = LLVMCreateTargetMachine(target, triple, name, feat, LLVMCodeGenLevelAggressive, LLVMRelocPIC,
                               LLVMCodeModelDefault);
  if (!tm) {
    snprintf(why, why_cap, "LLVM cannot target CPU '%s'", name);
    goto out;
  }
  LLVMSetTarget(c.mod, triple);
  LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
  LLVMSetModuleDataLayout(c.mod, dl);
  LLVMDisposeTargetData(dl);
  LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
  LLVMErrorRef err = LLVMRunPasses(c.mod, "default<O3>", tm, po);
  LLVMDisposePassBuilderOptions(po);
  if (err) {
    char *e = LLVMGetErrorMessage(err);
    snprintf(why, why_cap, "LLVM O3 pipeline failed: %.300s", e);
    LLVMDisposeErrorMessage(e);
    goto out;
  }
  snprintf(obj, sizeof obj, "%s.o", so_path);
  if (LLVMTargetMachineEmitToFile(tm, c.mod, obj, LLVMObjectFile, &msg)) {
    snprintf(why, why_cap, "cannot emit object code: %.300s", msg);
    goto out;
  }
  rc = run_linker(obj, so_path, why, why_cap);
out:
  if (obj[0])
    unlink(obj);
  LLVMDisposeMessage(msg);
  LLVMDisposeMessage(triple);
  LLVMDisposeMessage(name);
  LLVMDisposeMessage(feat);
  if (tm)
    LLVMDisposeTargetMachine(tm);
  LLVMDisposeBuilder(c.b);
  LLVMDisposeModule(c.mod);
  LLVMContextDispose(c.ctx);
  return rc;
}
