"""The C kernels pasted into every generated model.c: TFLite's int8 reference kernels
(tensorflow/lite/kernels/internal/reference/integer_ops and gemmlowp's fixed-point softmax),
rewritten in C99 with the same integer steps in the same order, so results are bit-identical.

Every function is `static inline`: a model that does not use one compiles without a warning and
without its code. Layer parameters are `const` structs (flash), built by the generator."""

KERNELS = r"""
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1) && !defined(FMNIST_NO_MVE)
#define FM_MVE 1
#include <arm_mve.h>
#else
#define FM_MVE 0
#endif
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(FMNIST_NO_DSP)
#define FM_DSP 1
#include <arm_acle.h>
#else
#define FM_DSP 0
#endif

#define FM_INT32_MAX 2147483647
#define FM_INT32_MIN (-FM_INT32_MAX - 1)

typedef struct {
  int in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
  int depthwise;              /* DEPTHWISE_CONV_2D: one input channel per output channel / multiplier */
  int depth_multiplier;
  int32_t in_offset, out_offset;
  int act_min, act_max;
  const int8_t *weights;      /* conv [out_c][k_h][k_w][in_c]; depthwise [k_h][k_w][out_c] */
  const int32_t *bias, *multiplier, *shift;
  const int32_t *weight_sums;  /* per output channel, over its whole window (not depthwise) */
} fm_conv_t;

typedef struct {              /* a max pool fed by a conv whose output nothing else reads */
  int out_h, out_w, f_h, f_w, stride_h, stride_w, act_min, act_max;
} fm_pool_after_t;

typedef struct {
  int in_h, in_w, c, out_h, out_w, f_h, f_w, stride_h, stride_w, pad_h, pad_w, act_min, act_max;
} fm_pool_t;

typedef struct {
  int in_n, out_n;
  int32_t out_offset;
  int act_min, act_max;
  const int8_t *weights;      /* [out_n][in_n] */
  const int32_t *bias;        /* bias + input offset x the row's weight sum: the same int32 sums */
  const int32_t *multiplier, *shift;
} fm_fc_t;

typedef struct {
  int h, w, c;
  int32_t in_zero_point, out_zero_point, multiplier, shift;  /* 1 / (h w) folded into the multiplier */
} fm_mean_t;

typedef struct {
  int n, left_shift;
  int32_t in1_offset, in2_offset, out_offset, in1_multiplier, in2_multiplier, out_multiplier;
  int32_t in1_shift, in2_shift, out_shift;
  int act_min, act_max;
} fm_add_t;

static inline int32_t fm_clamp(int32_t x, int32_t low, int32_t high) {
  return x < low ? low : (x > high ? high : x);
}

/* gemmlowp's SaturatingRoundingDoublingHighMul */
static inline int32_t fm_high_mul(int32_t a, int32_t b) {
  int64_t ab;
  if (a == b && a == FM_INT32_MIN) return FM_INT32_MAX;
  ab = (int64_t)a * (int64_t)b;
  return (int32_t)((ab + (ab >= 0 ? (1 << 30) : (1 - (1 << 30)))) / ((int64_t)1 << 31));
}

/* gemmlowp's RoundingDivideByPOT: round half away from zero */
static inline int32_t fm_div_pot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + ((x & mask) > threshold ? 1 : 0);
}

/* TFLite's MultiplyByQuantizedMultiplier (double rounding) */
static inline int32_t fm_requantize(int32_t x, int32_t multiplier, int32_t shift) {
  const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
  return fm_div_pot(fm_high_mul(x * (1 << left), multiplier), right);
}

/* gemmlowp's SaturatingRoundingMultiplyByPOT for a positive exponent */
static inline int32_t fm_saturating_shl(int32_t x, int exponent) {
  const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1);
  if (x > threshold) return FM_INT32_MAX;
  if (x < -threshold) return FM_INT32_MIN;
  return (int32_t)((uint32_t)x << exponent);
}

/* sum of a[i] * b[i]: the inner loop of every conv and fully connected layer. With Helium (MVE,
   M55) sixteen products a step through VMLADAVA, with the DSP extension (M4, M7, M33) four
   through SMLAD: the same int32 sum, exactly. */
static inline int32_t fm_dot(const int8_t *a, const int8_t *b, int n) {
  int32_t acc = 0;
  int i = 0;
#if FM_MVE
  for (; i + 16 <= n; i += 16) acc = vmladavaq_s8(acc, vld1q_s8(a + i), vld1q_s8(b + i));
  if (i < n) {
    const mve_pred16_t tail = vctp8q((uint32_t)(n - i));
    acc = vmladavaq_p_s8(acc, vld1q_z_s8(a + i, tail), vld1q_z_s8(b + i, tail), tail);
    i = n;
  }
#elif FM_DSP
  for (; i + 4 <= n; i += 4) {
    uint32_t wa, wb;
    memcpy(&wa, a + i, 4);
    memcpy(&wb, b + i, 4);
    acc = __smlad(__sxtb16((int8x4_t)wa), __sxtb16((int8x4_t)wb), acc);
    acc = __smlad(__sxtb16((int8x4_t)((wa >> 8) | (wa << 24))), __sxtb16((int8x4_t)((wb >> 8) | (wb << 24))), acc);
  }
#endif
  for (; i < n; ++i) acc += (int32_t)a[i] * (int32_t)b[i];
  return acc;
}

/* One output value of a depthwise conv, as TFLite's reference computes it. */
static inline int8_t fm_depthwise_at(const fm_conv_t *p, const int8_t *in, int oy, int ox, int oc) {
  const int y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
  int32_t acc = 0;
  int ky, kx;
  for (ky = 0; ky < p->k_h; ++ky) {
    const int y = y0 + ky * p->dil_h;
    if (y < 0 || y >= p->in_h) continue;
    for (kx = 0; kx < p->k_w; ++kx) {
      const int x = x0 + kx * p->dil_w;
      if (x < 0 || x >= p->in_w) continue;
      acc += (int32_t)p->weights[(ky * p->k_w + kx) * p->out_c + oc]
           * ((int32_t)in[(y * p->in_w + x) * p->in_c + oc / p->depth_multiplier] + p->in_offset);
    }
  }
  if (p->bias) acc += p->bias[oc];
  acc = fm_requantize(acc, p->multiplier[oc], p->shift[oc]) + p->out_offset;
  return (int8_t)fm_clamp(acc, p->act_min, p->act_max);
}

/* The input under one output position's window, [k_h][k_w][in_c]. A tap outside the input holds
   the input's zero point: its w * (x + offset) is 0, as TFLite's skipping it is. */
static inline void fm_patch(const fm_conv_t *p, const int8_t *in, int oy, int ox, int8_t *patch) {
  const int y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
  int ky, kx, run;
  for (ky = 0; ky < p->k_h; ++ky) {
    const int y = y0 + ky * p->dil_h;
    for (kx = 0; kx < p->k_w; kx += run) {
      const int x = x0 + kx * p->dil_w;
      int8_t *target = patch + (ky * p->k_w + kx) * p->in_c;
      run = 1;
      if (y < 0 || y >= p->in_h || x < 0 || x >= p->in_w) {
        memset(target, -p->in_offset, (size_t)p->in_c);
      } else {
        if (p->dil_w == 1) {  /* the taps left in this row that lie inside: contiguous in the input */
          run = p->k_w - kx < p->in_w - x ? p->k_w - kx : p->in_w - x;
        }
        memcpy(target, in + (y * p->in_w + x) * p->in_c, (size_t)(run * p->in_c));
      }
    }
  }
}

/* One output channel of a conv over a patch: sum(w * x) + offset * sum(w), TFLite's
   sum(w * (x + offset)) as the same integer, then bias, requantization and clamp. */
static inline int8_t fm_conv_value(const fm_conv_t *p, const int8_t *patch, int oc) {
  const int window = p->k_h * p->k_w * p->in_c;
  int32_t acc = fm_dot(p->weights + oc * window, patch, window) + p->in_offset * p->weight_sums[oc];
  if (p->bias) acc += p->bias[oc];
  acc = fm_requantize(acc, p->multiplier[oc], p->shift[oc]) + p->out_offset;
  return (int8_t)fm_clamp(acc, p->act_min, p->act_max);
}

/* Every channel at one output position into `cell`, or (keep_max) its max with what is there. */
static inline void fm_conv_position(const fm_conv_t *p, const int8_t *in, int oy, int ox, int8_t *cell,
                                    int8_t *patch, int keep_max) {
  int oc;
  if (!p->depthwise) fm_patch(p, in, oy, ox, patch);
  for (oc = 0; oc < p->out_c; ++oc) {
    const int8_t value = p->depthwise ? fm_depthwise_at(p, in, oy, ox, oc) : fm_conv_value(p, patch, oc);
    if (!keep_max || value > cell[oc]) cell[oc] = value;
  }
}

static inline void fm_conv(const fm_conv_t *p, const int8_t *in, int8_t *out, int8_t *patch) {
  int oy, ox;
  for (oy = 0; oy < p->out_h; ++oy)
    for (ox = 0; ox < p->out_w; ++ox, out += p->out_c) fm_conv_position(p, in, oy, ox, out, patch, 0);
}

/* A conv and the VALID max pool after it, without storing the conv's output: each pooled cell is
   the max of the conv values in its window, computed where they are needed. */
static inline void fm_conv_max_pool(const fm_conv_t *p, const fm_pool_after_t *q, const int8_t *in, int8_t *out,
                                    int8_t *patch) {
  int py, px, oc, fy, fx;
  for (py = 0; py < q->out_h; ++py)
    for (px = 0; px < q->out_w; ++px, out += p->out_c) {
      for (oc = 0; oc < p->out_c; ++oc) out[oc] = -128;
      for (fy = 0; fy < q->f_h && py * q->stride_h + fy < p->out_h; ++fy)
        for (fx = 0; fx < q->f_w && px * q->stride_w + fx < p->out_w; ++fx)
          fm_conv_position(p, in, py * q->stride_h + fy, px * q->stride_w + fx, out, patch, 1);
      for (oc = 0; oc < p->out_c; ++oc) out[oc] = (int8_t)fm_clamp(out[oc], q->act_min, q->act_max);
    }
}

static inline void fm_pool(const fm_pool_t *p, int average, const int8_t *in, int8_t *out) {
  int oy, ox, c, y, x;
  for (oy = 0; oy < p->out_h; ++oy)
    for (ox = 0; ox < p->out_w; ++ox) {
      const int y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
      const int y_start = y0 < 0 ? 0 : y0, x_start = x0 < 0 ? 0 : x0;
      const int y_end = y0 + p->f_h < p->in_h ? y0 + p->f_h : p->in_h;
      const int x_end = x0 + p->f_w < p->in_w ? x0 + p->f_w : p->in_w;
      for (c = 0; c < p->c; ++c) {
        int32_t acc = average ? 0 : -128, count = 0;
        for (y = y_start; y < y_end; ++y)
          for (x = x_start; x < x_end; ++x) {
            const int32_t value = in[(y * p->in_w + x) * p->c + c];
            if (average) acc += value; else if (value > acc) acc = value;
            ++count;
          }
        if (average && count) acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
        *out++ = (int8_t)fm_clamp(acc, p->act_min, p->act_max);
      }
    }
}

static inline void fm_fully_connected(const fm_fc_t *p, const int8_t *in, int8_t *out) {
  int o;
  for (o = 0; o < p->out_n; ++o) {
    const int8_t *w = p->weights + o * p->in_n;
    int32_t acc = p->bias[o] + fm_dot(w, in, p->in_n);
    acc = fm_requantize(acc, p->multiplier[o], p->shift[o]) + p->out_offset;
    out[o] = (int8_t)fm_clamp(acc, p->act_min, p->act_max);
  }
}

/* TFLite's int8 MEAN over height and width (QuantizedMeanOrSum): the sum less the input zero point
   times the count, requantized by a multiplier that includes 1 / count. */
static inline void fm_mean(const fm_mean_t *p, const int8_t *in, int8_t *out) {
  const int32_t count = p->h * p->w;
  int c, i;
  for (c = 0; c < p->c; ++c) {
    int32_t sum = 0;
    for (i = 0; i < count; ++i) sum += in[i * p->c + c];
    sum = fm_requantize(sum - p->in_zero_point * count, p->multiplier, p->shift) + p->out_zero_point;
    out[c] = (int8_t)fm_clamp(sum, -128, 127);
  }
}

static inline void fm_add(const fm_add_t *p, const int8_t *a, const int8_t *b, int8_t *out) {
  int i;
  for (i = 0; i < p->n; ++i) {
    const int32_t x = fm_requantize((a[i] + p->in1_offset) * (1 << p->left_shift), p->in1_multiplier, p->in1_shift);
    const int32_t y = fm_requantize((b[i] + p->in2_offset) * (1 << p->left_shift), p->in2_multiplier, p->in2_shift);
    const int32_t sum = fm_requantize(x + y, p->out_multiplier, p->out_shift) + p->out_offset;
    out[i] = (int8_t)fm_clamp(sum, p->act_min, p->act_max);
  }
}

/* gemmlowp's exp_on_interval_between_negative_one_quarter_and_0_excl (0 integer bits) */
static inline int32_t fm_exp_quarter(int32_t a) {
  const int32_t constant_term = 1895147668, one_third = 715827883;
  const int32_t x = a + (1 << 28);
  const int32_t x2 = fm_high_mul(x, x), x3 = fm_high_mul(x2, x), x4 = fm_high_mul(x2, x2);
  const int32_t poly = fm_div_pot(fm_high_mul(fm_div_pot(x4, 2) + x3, one_third) + x2, 1);
  return constant_term + fm_high_mul(constant_term, x + poly);
}

/* gemmlowp's exp_on_negative_values: input with 5 integer bits, result with 0 */
static inline int32_t fm_exp_negative(int32_t a) {
  static const int32_t barrel[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  const int32_t quarter = 1 << 24;
  const int32_t a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter;
  const int32_t remainder = a_mod_quarter_minus_quarter - a;
  int32_t result = fm_exp_quarter(fm_saturating_shl(a_mod_quarter_minus_quarter, 5));
  int k;
  for (k = 0; k < 7; ++k)
    if (remainder & (1 << (24 + k))) result = fm_high_mul(result, barrel[k]);
  return a == 0 ? FM_INT32_MAX : result;
}

/* gemmlowp's one_over_one_plus_x_for_x_in_0_1: Newton-Raphson with 2 integer bits */
static inline int32_t fm_one_over_one_plus_x(int32_t a) {
  const int64_t sum = (int64_t)a + FM_INT32_MAX;
  const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
  int32_t x = 1515870810 + fm_high_mul(half_denominator, -1010580540);
  int i;
  for (i = 0; i < 3; ++i) {
    const int32_t one_minus = (1 << 29) - fm_high_mul(half_denominator, x);
    x = x + fm_saturating_shl(fm_high_mul(x, one_minus), 2);
  }
  return fm_saturating_shl(x, 1);
}

/* TFLite's int8 softmax (output scale 1/256, zero point -128) */
static inline void fm_softmax(const int8_t *in, int8_t *out, int n, int32_t multiplier, int left_shift,
                              int32_t diff_min) {
  int8_t max = -128;
  int32_t sum = 0, scale;
  int i, headroom = 0, bits_over_unit;
  for (i = 0; i < n; ++i) if (in[i] > max) max = in[i];
  for (i = 0; i < n; ++i) {
    const int32_t diff = in[i] - max;
    if (diff >= diff_min)
      sum += fm_div_pot(fm_exp_negative(fm_high_mul(diff * (1 << left_shift), multiplier)), 12);
  }
  while (headroom < 32 && !((uint32_t)sum & (0x80000000u >> headroom))) ++headroom;
  bits_over_unit = 12 - headroom;
  scale = fm_one_over_one_plus_x((int32_t)(((uint32_t)sum << headroom) - 0x80000000u));
  for (i = 0; i < n; ++i) {
    const int32_t diff = in[i] - max;
    if (diff >= diff_min) {
      const int32_t e = fm_exp_negative(fm_high_mul(diff * (1 << left_shift), multiplier));
      out[i] = (int8_t)fm_clamp(fm_div_pot(fm_high_mul(scale, e), bits_over_unit + 31 - 8) - 128, -128, 127);
    } else {
      out[i] = -128;
    }
  }
}
"""
