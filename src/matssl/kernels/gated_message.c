/* CGCNN's gated message on the CPU, in one pass over z (see matssl/kernels/__init__.py and
 * matssl.encoders.GatedConvolution, whose PyTorch code computes the same).
 *
 * z: [n, k, 2c] float32, contiguous; z[i, j, :c] = f (gate), z[i, j, c:] = s (core) of atom i's
 * neighbour slot j. pad: [n, k] (1 = padded slot) or NULL. out: [n, c].
 *
 *   out[i] = sum over j of sigmoid(f_ij) * softplus(s_ij)      (padded slots: 0)
 *
 * With derivatives != 0, z is overwritten with the message's derivatives (0 in padded slots):
 *   z[i, j, :c] = d msg / d f = sigmoid(f) (1 - sigmoid(f)) softplus(s)
 *   z[i, j, c:] = d msg / d s = sigmoid(f) sigmoid(s)
 *
 * Every exp() takes a non-positive argument (e = exp(-|x|) in (0, 1]), so no intermediate overflows,
 * which lets the compiler use -ffast-math and vectorise exp/log1p (glibc's libmvec). Atoms are split
 * across threads; each writes only its own rows, so the result does not depend on the thread count.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

void gated_message(float *z, const uint8_t *pad, float *out, int64_t n, int64_t k, int64_t c,
                   int32_t derivatives, int32_t threads) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; i++) {
        float *acc = out + i * c;
        memset(acc, 0, c * sizeof(float));
        for (int64_t j = 0; j < k; j++) {
            float *f = z + (i * k + j) * 2 * c, *s = f + c;
            if (pad && pad[i * k + j]) {
                if (derivatives) memset(f, 0, 2 * c * sizeof(float));
                continue;
            }
#pragma omp simd
            for (int64_t ch = 0; ch < c; ch++) {
                float ef = expf(-fabsf(f[ch])), es = expf(-fabsf(s[ch]));
                float sig_f = (f[ch] >= 0.0f ? 1.0f : ef) / (1.0f + ef);
                float sig_minus_f = (f[ch] >= 0.0f ? ef : 1.0f) / (1.0f + ef);  /* 1 - sig_f, without cancelling */
                float sig_s = (s[ch] >= 0.0f ? 1.0f : es) / (1.0f + es);
                float softplus_s = fmaxf(s[ch], 0.0f) + log1pf(es);
                float msg = sig_f * softplus_s;
                acc[ch] += msg;
                if (derivatives) {
                    f[ch] = msg * sig_minus_f;
                    s[ch] = sig_f * sig_s;
                }
            }
        }
    }
}

/* The backward pass's first step in one pass: grad_z[i, j] = dz[i, j] * [g_i | g_i] (both halves of z
 * feed one message) and grad_centre[i] = sum over j of grad_z[i, j]. dz: [n, k, 2c] (the derivatives
 * the forward pass wrote); g: [n, c]; grad_z: [n, k, 2c]; grad_centre: [n, 2c]. */
void gated_message_backward(const float *dz, const float *g, float *grad_z, float *grad_centre, int64_t n, int64_t k,
                            int64_t c, int32_t threads) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; i++) {
        const float *gi = g + i * c;
        float *acc = grad_centre + i * 2 * c;
        memset(acc, 0, 2 * c * sizeof(float));
        for (int64_t j = 0; j < k; j++) {
            const float *d = dz + (i * k + j) * 2 * c;
            float *out = grad_z + (i * k + j) * 2 * c;
#pragma omp simd
            for (int64_t ch = 0; ch < c; ch++) {
                out[ch] = d[ch] * gi[ch];
                out[c + ch] = d[c + ch] * gi[ch];
                acc[ch] += out[ch];
                acc[c + ch] += out[c + ch];
            }
        }
    }
}
