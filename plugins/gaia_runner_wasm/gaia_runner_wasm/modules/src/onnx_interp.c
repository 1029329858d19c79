/* Task module "onnx_interp": runs a model imported by `gaia model import` (docs/models.md) on a batch.
 *
 * "infer": model bytes (the compact format of gaia_core/models/graph.py), u32 n, then n samples of the
 * input (f32)  ->  n samples of the output (f32). The heavy ops call the deterministic tensor host API
 * (gaia_tensor.h), so every node computes the same bytes. The whole model is checked before anything
 * runs: a bad model or input is refused with a message, never read out of bounds. */
#include "gaia_abi.h"
#include "gaia_tensor.h"

#define MAX_RANK 6u
#define MAX_VALUES 4096u
#define MAX_OPS 4096u
#define NONE 0xFFFFFFFFu
#define HEADER 32u
#define VALUE_REC (4u * (MAX_RANK + 2u))
#define OP_REC 36u
#define MAX_ELEMS (1ull << 28) /* per buffer: 1 GiB of f32, beyond any memory limit */

enum { GEMM = 1, CONV, MAXPOOL, AVGPOOL, RELU, SIGMOID, TANH, SOFTMAX, ADD, MUL, VIEW };

typedef struct {
    u32 rank, dims[MAX_RANK], offset; /* offset: first weight, NONE for an activation */
    u64 size;                         /* elements (of one sample, for an activation) */
    float *data;                      /* a constant's weights; an activation's buffer once written */
} value_t;

typedef struct { u32 opcode, out, in[3]; int params[4]; } op_t;

static value_t values[MAX_VALUES];
static op_t ops[MAX_OPS];

static int is_const(u32 v) { return values[v].offset != NONE; }

/* Ready activation `v` (written by an earlier op, or the input). */
static int ready_act(u32 v) { return v < MAX_VALUES && !is_const(v) && values[v].data; }

static int dims_are(const value_t *v, u32 rank, u32 a, u32 b, u32 c, u32 d) {
    const u32 want[4] = {a, b, c, d};
    if (v->rank != rank) return 0;
    for (u32 i = 0; i < rank && i < 4; i++)
        if (v->dims[i] != want[i]) return 0;
    return 1;
}

/* Check one op against the values it reads and writes; 0 when fine, else a message. */
static const char *check_op(const op_t *op, u32 n_values) {
    for (u32 i = 0; i < 3; i++)
        if (op->in[i] != NONE && op->in[i] >= n_values) return "infer: an op reads a value that does not exist";
    if (op->out >= n_values || is_const(op->out) || values[op->out].data)
        return "infer: an op writes a constant or a value already written";
    if (!ready_act(op->in[0])) return "infer: an op reads an activation before it is written";
    const value_t *x = &values[op->in[0]], *y = &values[op->out];
    const int *p = op->params;
    switch (op->opcode) {
    case GEMM: { /* x: rows x k per sample, w: k x n (or n x k), bias: n */
        if (p[0] & ~1 || p[1] <= 0 || p[2] <= 0 || p[3] <= 0) return "infer: bad gemm parameters";
        const u32 rows = p[1], k = p[2], cols = p[3];
        if (op->in[1] == NONE || !is_const(op->in[1]) || !dims_are(&values[op->in[1]], 2, p[0] ? cols : k, p[0] ? k : cols, 0, 0))
            return "infer: gemm weights do not match";
        if (op->in[2] != NONE && (!is_const(op->in[2]) || !dims_are(&values[op->in[2]], 1, cols, 0, 0, 0)))
            return "infer: gemm bias does not match";
        if (x->size != (u64)rows * k || y->size != (u64)rows * cols) return "infer: gemm shapes do not match";
        return 0;
    }
    case CONV: {
        if (op->in[1] == NONE) return "infer: convolution weights do not match";
        const value_t *w = &values[op->in[1]];
        if (p[0] <= 0 || p[1] < 0 || x->rank != 3 || !is_const(op->in[1]) || w->rank != 4 ||
            w->dims[1] != x->dims[0])
            return "infer: convolution weights do not match";
        const u64 oh = ((u64)x->dims[1] + 2ull * p[1] - w->dims[2]) / p[0] + 1;
        const u64 ow = ((u64)x->dims[2] + 2ull * p[1] - w->dims[3]) / p[0] + 1;
        if (w->dims[2] > x->dims[1] + 2ull * p[1] || w->dims[3] > x->dims[2] + 2ull * p[1] ||
            !dims_are(y, 3, w->dims[0], oh, ow, 0))
            return "infer: convolution shapes do not match";
        if (op->in[2] != NONE && (!is_const(op->in[2]) || !dims_are(&values[op->in[2]], 1, w->dims[0], 0, 0, 0)))
            return "infer: convolution bias does not match";
        return 0;
    }
    case MAXPOOL: case AVGPOOL:
        if (p[0] <= 0 || p[1] <= 0 || x->rank != 3 || (u32)p[0] > x->dims[1] || (u32)p[0] > x->dims[2] ||
            !dims_are(y, 3, x->dims[0], (x->dims[1] - p[0]) / p[1] + 1, (x->dims[2] - p[0]) / p[1] + 1, 0))
            return "infer: pooling shapes do not match";
        return 0;
    case RELU: case SIGMOID: case TANH: case VIEW:
        return x->size == y->size ? 0 : "infer: shapes do not match";
    case SOFTMAX:
        return p[0] > 0 && x->size == y->size && x->size % (u32)p[0] == 0 ? 0 : "infer: softmax shapes do not match";
    case ADD: case MUL: {
        const u32 b = op->in[1];
        if (b == NONE || x->size != y->size || values[b].size != x->size || (!is_const(b) && !ready_act(b)))
            return "infer: add/mul shapes do not match";
        return 0;
    }
    default:
        return "infer: unknown op (the model needs a newer GAIA)";
    }
}

static void run_op(const op_t *op, u32 n) {
    const value_t *x = &values[op->in[0]];
    value_t *y = &values[op->out];
    const int *p = op->params;
    const float *b = op->in[1] == NONE ? 0 : values[op->in[1]].data;
    const float *c = op->in[2] == NONE ? 0 : values[op->in[2]].data;
    if (op->opcode == VIEW) {
        y->data = x->data;
        return;
    }
    y->data = gaia_alloc_or_trap((u32)(4 * y->size * n));
    const int len = (int)(x->size * n);
    switch (op->opcode) {
    case GEMM:
        gt_gemm(x->data, b, y->data, (int)n * p[1], p[3], p[2], p[0] ? GT_TRANS_B : 0);
        if (c) gt_bias_add(y->data, c, (int)n * p[1], p[3]);
        break;
    case CONV: {
        const value_t *w = &values[op->in[1]];
        gt_conv2d(x->data, b, c, y->data, (int)n, x->dims[0], x->dims[1], x->dims[2], w->dims[0], w->dims[2],
                  w->dims[3], p[0], p[1]);
        break;
    }
    case MAXPOOL: gt_maxpool2d(x->data, y->data, 0, (int)n, x->dims[0], x->dims[1], x->dims[2], p[0], p[1]); break;
    case AVGPOOL: gt_avgpool2d(x->data, y->data, (int)n, x->dims[0], x->dims[1], x->dims[2], p[0], p[1]); break;
    case RELU: gt_relu(x->data, y->data, len); break;
    case SIGMOID: gt_sigmoid(x->data, y->data, len); break;
    case TANH: gt_tanh(x->data, y->data, len); break;
    case SOFTMAX: gt_softmax(x->data, y->data, len / p[0], p[0]); break;
    case ADD: case MUL:
        if (!is_const(op->in[1])) {
            (op->opcode == ADD ? gt_add : gt_mul)(x->data, b, y->data, len);
        } else if (op->opcode == ADD) {
            __builtin_memcpy(y->data, x->data, 4 * (u32)len);
            gt_bias_add(y->data, b, (int)n, (int)x->size);
        } else {
            for (u32 i = 0; i < n; i++) gt_mul(x->data + i * x->size, b, y->data + i * x->size, (int)x->size);
        }
        break;
    }
}

GAIA_EXPORT("infer") u64 infer_entry(const unsigned char *in, u32 len) {
    if (len < HEADER || __builtin_memcmp(in, "GAIAONNX", 8)) return gaia_fail("infer: the input does not start with a GAIA model");
    if (gaia_u32(in, 8) != 1) return gaia_fail("infer: model format version is not 1 (import it again with this GAIA)");
    const u32 n_values = gaia_u32(in, 12), n_ops = gaia_u32(in, 16), input = gaia_u32(in, 20),
              output = gaia_u32(in, 24), n_weights = gaia_u32(in, 28);
    if (!n_values || n_values > MAX_VALUES || n_ops > MAX_OPS || input >= n_values || output >= n_values)
        return gaia_fail("infer: bad model header");
    const u64 weights_at = HEADER + (u64)n_values * VALUE_REC + (u64)n_ops * OP_REC;
    const u64 model_end = weights_at + 4ull * n_weights;
    if (model_end + 4 > len) return gaia_fail("infer: the input is shorter than its model");
    const float *weights = (const float *)(in + weights_at);
    for (u32 v = 0; v < n_values; v++) {
        const unsigned char *r = in + HEADER + v * VALUE_REC;
        value_t *val = &values[v];
        val->rank = gaia_u32(r, 0);
        val->offset = gaia_u32(r, 4 * (MAX_RANK + 1));
        val->data = 0;
        if (val->rank > MAX_RANK) return gaia_fail("infer: a value has too high a rank");
        val->size = 1;
        for (u32 i = 0; i < val->rank; i++) {
            val->dims[i] = gaia_u32(r, 4 + 4 * i);
            val->size *= val->dims[i];
            if (!val->dims[i] || val->size > MAX_ELEMS) return gaia_fail("infer: a value has a bad shape");
        }
        if (val->offset != NONE) {
            if ((u64)val->offset + val->size > n_weights) return gaia_fail("infer: a constant lies outside the weights");
            val->data = (float *)(weights + val->offset);
        }
    }
    if (is_const(input)) return gaia_fail("infer: the model's input is a constant");
    const u32 n = gaia_u32(in, (u32)model_end);
    if (!n || (u64)n * values[input].size > MAX_ELEMS) return gaia_fail("infer: the batch is empty or too large");
    if (model_end + 4 + 4ull * n * values[input].size != len)
        return gaia_fail("infer: the batch does not match the model's input shape");
    values[input].data = (float *)(in + model_end + 4);
    for (u32 i = 0; i < n_ops; i++) {
        const unsigned char *r = in + HEADER + n_values * VALUE_REC + i * OP_REC;
        op_t *op = &ops[i];
        op->opcode = gaia_u32(r, 0);
        op->out = gaia_u32(r, 4);
        for (u32 j = 0; j < 3; j++) op->in[j] = gaia_u32(r, 8 + 4 * j);
        for (u32 j = 0; j < 4; j++) op->params[j] = (int)gaia_u32(r, 20 + 4 * j);
        const char *wrong = check_op(op, n_values);
        if (wrong) return gaia_fail(wrong);
        if ((u64)n * values[op->out].size > MAX_ELEMS) return gaia_fail("infer: an activation is too large");
        values[op->out].data = (float *)1; /* written, for the checks of later ops */
    }
    if (!values[output].data || is_const(output)) return gaia_fail("infer: no op writes the model's output");
    for (u32 v = 0; v < n_values; v++)
        if (!is_const(v) && v != input) values[v].data = 0;
    for (u32 i = 0; i < n_ops; i++) run_op(&ops[i], n);
    return gaia_output(values[output].data, (u32)(4 * n * values[output].size));
}
