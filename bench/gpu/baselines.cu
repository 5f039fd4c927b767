// Hand-written CUDA baselines for the GPU rows of WORKLOADS.md that loom does not generate yet,
// built with nvcc by bench/gpu/run.sh:
//
//   W3 softmax over rows, W4 layer norm over rows (eps 1e-5, gamma and beta along the row):
//       one block per row, the row read once into registers (float4), block reductions by warp
//       shuffles, one write;
//   W6 sum of all elements (deterministic two-stage, no atomics) and column sums (partial sums
//       over row strips, then a fixed-order sum of the strips);
//   W7 matmul, W8 gelu(A @ W + bias) with cuBLASLt's GELU_BIAS epilogue, W9 the transformer MLP
//       block as the W4 kernel + cuBLASLt GELU_BIAS + cuBLASLt BIAS with the residual as C
//       (only with -DLOOM_WITH_CUBLASLT and -lcublasLt; both float32 and TF32 compute).
//
// Beside each memory-bound row, cudaMemcpyAsync of the same bytes (read + write), the physical
// limit. Every output is poisoned (NaN) before a checked run and compared on a sample of rows
// (all of it for the reductions) with a float64 host reference by ||out - ref|| / ||ref||; a
// wrong result is reported and not timed. Times are medians of CUDA-event-timed runs after
// warm-up. Prints a table; writes JSON to argv[1].
//
// Usage: baselines [out.json] [--small]   (--small: tiny sizes, for a quick check)
#include <cuda_runtime.h>
#ifdef LOOM_WITH_CUBLASLT
#include <cublasLt.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

#define CK(call)                                                                                  \
  do {                                                                                            \
    cudaError_t e_ = (call);                                                                      \
    if (e_ != cudaSuccess) {                                                                      \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(2);                                                                               \
    }                                                                                             \
  } while (0)
#define CK_LAUNCH() CK(cudaGetLastError())

struct row {
  std::string workload, variant, status;
  double ms = 0, gbps = 0, tflops = 0, err = 0;
};
std::vector<row> rows;
cudaDeviceProp prop;

void report(const char* w, const char* v, double ms, double bytes, double flops, double err, const char* status = "ok") {
  row r{w, v, status, ms, bytes > 0 && ms > 0 ? bytes / ms / 1e6 : 0, flops > 0 && ms > 0 ? flops / ms / 1e9 : 0, err};
  if (r.status == "ok")
    std::printf("%-9s %-34s %9.3f ms %8.1f GB/s %7.1f TFLOP/s  err %.2e\n", w, v, ms, r.gbps, r.tflops, err);
  else
    std::printf("%-9s %-34s %s (err %.2e)\n", w, v, status, err);
  rows.push_back(r);
}

/// Median milliseconds of `reps` event-timed runs of f, after 3 warm-up runs.
template <class F>
double median_ms(F&& f, int reps = 20) {
  for (int i = 0; i < 3; ++i) f();
  CK(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    CK(cudaEventRecord(a));
    f();
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// ---------------------------------------------------------------------------------------------
// Device helpers
// ---------------------------------------------------------------------------------------------

/// Uniform values in [-1, 1) times `scale`, never zero: a hash of (seed, index), so the host can
/// copy back any part it needs for a reference.
__global__ void fill_uniform(float* p, size_t n, unsigned long long seed, float scale) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    unsigned long long z = (i + 1) * 0x9E3779B97F4A7C15ull + seed * 0xD1B54A32D192ED03ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    float v = static_cast<float>(z >> 40) * 0x1.0p-24f * 2.f - 1.f;
    p[i] = (v == 0.f ? 0.5f : v) * scale;
  }
}

struct dbuf {
  float* p = nullptr;
  size_t n = 0;
  explicit dbuf(size_t count) : n(count) { CK(cudaMalloc(&p, n * sizeof(float))); }
  ~dbuf() { cudaFree(p); }
  dbuf(const dbuf&) = delete;
  dbuf& operator=(const dbuf&) = delete;
  void random(unsigned long long seed, float scale = 1.f) {
    fill_uniform<<<prop.multiProcessorCount * 8, 256>>>(p, n, seed, scale);
    CK_LAUNCH();
  }
  void poison() { CK(cudaMemset(p, 0xff, n * sizeof(float))); }  // NaN everywhere
  std::vector<float> host(size_t off = 0, size_t count = ~size_t(0)) const {
    count = std::min(count, n - off);
    std::vector<float> h(count);
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(h.data(), p + off, count * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
  }
};

/// ||got - want|| / ||want||; NaN in got gives infinity.
double rel_err(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// Sum (or max) over the block, returned to every thread; `sh` holds one float per warp and may
/// be reused right after.
template <int BLOCK, bool MAX>
__device__ __forceinline__ float block_reduce(float v, float* sh) {
  constexpr int warps = BLOCK / 32;
  v = MAX ? warp_max(v) : warp_sum(v);
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  if (lane == 0) sh[w] = v;
  __syncthreads();
  v = lane < warps ? sh[lane] : (MAX ? -INFINITY : 0.f);
  v = MAX ? warp_max(v) : warp_sum(v);
  __syncthreads();
  return v;
}

// ---------------------------------------------------------------------------------------------
// W3, W4: one block per row; the row (BLOCK * V float4) is held in registers
// ---------------------------------------------------------------------------------------------

template <int BLOCK, int V>
__global__ void __launch_bounds__(BLOCK) softmax_rows(const float4* __restrict__ x, float4* __restrict__ o) {
  __shared__ float sh[BLOCK / 32];
  const size_t base = static_cast<size_t>(blockIdx.x) * BLOCK * V + threadIdx.x;
  float4 r[V];
#pragma unroll
  for (int v = 0; v < V; ++v) r[v] = x[base + v * BLOCK];
  float m = -INFINITY;
#pragma unroll
  for (int v = 0; v < V; ++v) m = fmaxf(fmaxf(fmaxf(m, r[v].x), fmaxf(r[v].y, r[v].z)), r[v].w);
  m = block_reduce<BLOCK, true>(m, sh);
  float s = 0.f;
#pragma unroll
  for (int v = 0; v < V; ++v) {
    r[v] = make_float4(expf(r[v].x - m), expf(r[v].y - m), expf(r[v].z - m), expf(r[v].w - m));
    s += (r[v].x + r[v].y) + (r[v].z + r[v].w);
  }
  const float inv = 1.f / block_reduce<BLOCK, false>(s, sh);
#pragma unroll
  for (int v = 0; v < V; ++v) o[base + v * BLOCK] = make_float4(r[v].x * inv, r[v].y * inv, r[v].z * inv, r[v].w * inv);
}

template <int BLOCK, int V>
__global__ void __launch_bounds__(BLOCK) layernorm_rows(const float4* __restrict__ x, const float4* __restrict__ g,
                                                       const float4* __restrict__ b, float4* __restrict__ o, float eps) {
  __shared__ float sh[BLOCK / 32];
  constexpr float inv_n = 1.f / (BLOCK * V * 4);
  const size_t base = static_cast<size_t>(blockIdx.x) * BLOCK * V + threadIdx.x;
  float4 r[V];
#pragma unroll
  for (int v = 0; v < V; ++v) r[v] = x[base + v * BLOCK];
  float s = 0.f;
#pragma unroll
  for (int v = 0; v < V; ++v) s += (r[v].x + r[v].y) + (r[v].z + r[v].w);
  const float mean = block_reduce<BLOCK, false>(s, sh) * inv_n;
  float q = 0.f;
#pragma unroll
  for (int v = 0; v < V; ++v) {
    r[v] = make_float4(r[v].x - mean, r[v].y - mean, r[v].z - mean, r[v].w - mean);
    q += (r[v].x * r[v].x + r[v].y * r[v].y) + (r[v].z * r[v].z + r[v].w * r[v].w);
  }
  const float rs = rsqrtf(block_reduce<BLOCK, false>(q, sh) * inv_n + eps);
#pragma unroll
  for (int v = 0; v < V; ++v) {
    const float4 gg = g[threadIdx.x + v * BLOCK], bb = b[threadIdx.x + v * BLOCK];
    o[base + v * BLOCK] = make_float4(r[v].x * rs * gg.x + bb.x, r[v].y * rs * gg.y + bb.y, r[v].z * rs * gg.z + bb.z,
                                      r[v].w * rs * gg.w + bb.w);
  }
}

/// Launches a row kernel for `cols` (1024, 2048, 4096 or 8192): 256 threads, cols / 1024 float4
/// each.
#define LOOM_ROW_CASES(KERNEL, ...)                                                             \
  switch (cols / 1024) {                                                                        \
    case 1: KERNEL<256, 1><<<rows_, 256>>>(__VA_ARGS__); break;                                 \
    case 2: KERNEL<256, 2><<<rows_, 256>>>(__VA_ARGS__); break;                                 \
    case 4: KERNEL<256, 4><<<rows_, 256>>>(__VA_ARGS__); break;                                 \
    case 8: KERNEL<256, 8><<<rows_, 256>>>(__VA_ARGS__); break;                                 \
    default: std::fprintf(stderr, "row kernels: %zu columns not instantiated\n", cols); std::exit(2); \
  }                                                                                             \
  CK_LAUNCH()

void softmax(const float* x, float* o, size_t rows_, size_t cols) {
  LOOM_ROW_CASES(softmax_rows, (const float4*)x, (float4*)o);
}
void layernorm(const float* x, const float* g, const float* b, float* o, size_t rows_, size_t cols) {
  LOOM_ROW_CASES(layernorm_rows, (const float4*)x, (const float4*)g, (const float4*)b, (float4*)o, 1e-5f);
}

// ---------------------------------------------------------------------------------------------
// W6: full sum (two stages, fixed order) and column sums
// ---------------------------------------------------------------------------------------------

__global__ void __launch_bounds__(256) sum_stage1(const float4* __restrict__ x, size_t n4, float* __restrict__ part) {
  __shared__ float sh[8];
  float a0 = 0.f, a1 = 0.f;
  size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  const size_t step = (size_t)gridDim.x * blockDim.x;
  for (; i + step < n4; i += 2 * step) {
    const float4 u = x[i], v = x[i + step];
    a0 += (u.x + u.y) + (u.z + u.w);
    a1 += (v.x + v.y) + (v.z + v.w);
  }
  if (i < n4) {
    const float4 u = x[i];
    a0 += (u.x + u.y) + (u.z + u.w);
  }
  const float s = block_reduce<256, false>(a0 + a1, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}
__global__ void __launch_bounds__(1024) sum_stage2(const float* __restrict__ part, int n, float* __restrict__ out) {
  __shared__ float sh[32];
  float a = 0.f;
  for (int i = threadIdx.x; i < n; i += 1024) a += part[i];
  a = block_reduce<1024, false>(a, sh);
  if (threadIdx.x == 0) *out = a;
}

/// Column sums: block (32 float4 columns) x (8 row lanes) over one strip of rows, into part[strip].
__global__ void __launch_bounds__(256) colsum_stage1(const float4* __restrict__ x, size_t rows_, size_t cols4,
                                                     size_t strip, float4* __restrict__ part) {
  __shared__ float4 sh[8][32];
  const size_t c = blockIdx.x * 32 + threadIdx.x;
  const size_t r0 = blockIdx.y * strip, r1 = r0 + strip < rows_ ? r0 + strip : rows_;
  float4 a = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 8
  for (size_t r = r0 + threadIdx.y; r < r1; r += 8) {
    const float4 v = x[r * cols4 + c];
    a.x += v.x; a.y += v.y; a.z += v.z; a.w += v.w;
  }
  sh[threadIdx.y][threadIdx.x] = a;
  __syncthreads();
  if (threadIdx.y == 0) {
    for (int k = 1; k < 8; ++k) {
      const float4 v = sh[k][threadIdx.x];
      a.x += v.x; a.y += v.y; a.z += v.z; a.w += v.w;
    }
    part[blockIdx.y * cols4 + c] = a;
  }
}
__global__ void colsum_stage2(const float4* __restrict__ part, int strips, size_t cols4, float4* __restrict__ o) {
  const size_t c = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
  if (c >= cols4) return;
  float4 a = make_float4(0.f, 0.f, 0.f, 0.f);
  for (int s = 0; s < strips; ++s) {
    const float4 v = part[s * cols4 + c];
    a.x += v.x; a.y += v.y; a.z += v.z; a.w += v.w;
  }
  o[c] = a;
}

double copy_ms(size_t bytes) {
  void *a, *b;
  CK(cudaMalloc(&a, bytes));
  CK(cudaMalloc(&b, bytes));
  CK(cudaMemset(a, 1, bytes));
  const double ms = median_ms([&] { CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice)); });
  CK(cudaFree(a));
  CK(cudaFree(b));
  return ms;
}

// Host references, float64, on one row.
void softmax_ref(const float* x, size_t c, double* o) {
  double m = -INFINITY, s = 0;
  for (size_t j = 0; j < c; ++j) m = std::max(m, double(x[j]));
  for (size_t j = 0; j < c; ++j) s += (o[j] = std::exp(x[j] - m));
  for (size_t j = 0; j < c; ++j) o[j] /= s;
}
void layernorm_ref(const float* x, const float* g, const float* b, size_t c, double* o) {
  double mean = 0, var = 0;
  for (size_t j = 0; j < c; ++j) mean += x[j];
  mean /= c;
  for (size_t j = 0; j < c; ++j) var += (x[j] - mean) * (x[j] - mean);
  var /= c;
  const double rs = 1 / std::sqrt(var + 1e-5);
  for (size_t j = 0; j < c; ++j) o[j] = (x[j] - mean) * rs * g[j] + b[j];
}
double gelu_ref(double h) { return 0.5 * h * (1 + std::tanh(0.7978845608028654 * (h + 0.044715 * h * h * h))); }

/// The rows the checks compare: first, last and some between.
std::vector<size_t> sample_rows(size_t rows_, size_t count) {
  std::vector<size_t> r;
  for (size_t k = 0; k < count; ++k) r.push_back(count == 1 ? 0 : k * (rows_ - 1) / (count - 1));
  return r;
}

constexpr double tol_f32 = 1e-5;

void run_rows(size_t R, size_t C) {
  const double bytes = 2.0 * R * C * sizeof(float);
  const double copy = copy_ms(R * C * sizeof(float));
  dbuf x(R * C), o(R * C), g(C), b(C);
  x.random(31);
  g.random(32);
  b.random(33);
  const auto rs = sample_rows(R, 16);
  std::vector<double> want(C);
  report("W3", "device copy, same bytes", copy, bytes, 0, 0);
  report("W4", "device copy, same bytes", copy, bytes, 0, 0);

  // W3 softmax
  o.poison();
  softmax(x.p, o.p, R, C);
  std::vector<float> got_all, want_in;
  std::vector<double> want_all;
  for (size_t r : rs) {
    const auto xr = x.host(r * C, C), orow = o.host(r * C, C);
    softmax_ref(xr.data(), C, want.data());
    got_all.insert(got_all.end(), orow.begin(), orow.end());
    want_all.insert(want_all.end(), want.begin(), want.end());
  }
  double err = rel_err(got_all, want_all);
  if (err <= tol_f32)
    report("W3", "hand-written CUDA (block per row)", median_ms([&] { softmax(x.p, o.p, R, C); }), bytes, 0, err);
  else
    report("W3", "hand-written CUDA (block per row)", 0, 0, 0, err, "wrong result");

  // W4 layer norm
  o.poison();
  layernorm(x.p, g.p, b.p, o.p, R, C);
  const auto gh = g.host(), bh = b.host();
  got_all.clear();
  want_all.clear();
  for (size_t r : rs) {
    const auto xr = x.host(r * C, C), orow = o.host(r * C, C);
    layernorm_ref(xr.data(), gh.data(), bh.data(), C, want.data());
    got_all.insert(got_all.end(), orow.begin(), orow.end());
    want_all.insert(want_all.end(), want.begin(), want.end());
  }
  err = rel_err(got_all, want_all);
  if (err <= tol_f32)
    report("W4", "hand-written CUDA (block per row)", median_ms([&] { layernorm(x.p, g.p, b.p, o.p, R, C); }),
           bytes + 2.0 * C * sizeof(float), 0, err);
  else
    report("W4", "hand-written CUDA (block per row)", 0, 0, 0, err, "wrong result");
}

void run_sums(size_t N, size_t R, size_t C) {
  {  // W6 sum of all elements; bytes read only
    dbuf x(N), out(1);
    x.random(41);
    const int parts = prop.multiProcessorCount * 8;
    dbuf part(parts);
    auto run = [&] {
      sum_stage1<<<parts, 256>>>((const float4*)x.p, N / 4, part.p);
      sum_stage2<<<1, 1024>>>(part.p, parts, out.p);
    };
    out.poison();
    run();
    CK_LAUNCH();
    const auto xh = x.host();
    double s = 0, sa = 0;
    for (float v : xh) s += v, sa += std::fabs(v);
    const float got = out.host()[0];
    // Error relative to the sum of magnitudes: the sum itself is near zero for values in [-1, 1].
    const double err = std::isfinite(got) ? std::fabs(got - s) / sa : INFINITY;
    const double copy = copy_ms(N * sizeof(float) / 2);  // the copy moves N floats, as the sum reads
    report("W6/sum", "device copy, same bytes", copy, N * 4.0, 0, 0);
    if (err <= 1e-6)
      report("W6/sum", "hand-written CUDA (two-stage)", median_ms(run), N * 4.0, 0, err);
    else
      report("W6/sum", "hand-written CUDA (two-stage)", 0, 0, 0, err, "wrong result");
  }
  {  // W6 column sums
    dbuf x(R * C), o(C);
    x.random(42);
    const int strips = std::max<int>(1, std::min<int>(static_cast<int>(R / 64), 2 * prop.multiProcessorCount * 8 * 32 / static_cast<int>(C / 4)));
    const size_t strip = (R + strips - 1) / strips;
    dbuf part(static_cast<size_t>(strips) * C);
    const size_t cols4 = C / 4;
    auto run = [&] {
      colsum_stage1<<<dim3(static_cast<unsigned>(cols4 / 32), strips), dim3(32, 8)>>>((const float4*)x.p, R, cols4, strip,
                                                                                     (float4*)part.p);
      colsum_stage2<<<static_cast<unsigned>((cols4 + 255) / 256), 256>>>((const float4*)part.p, strips, cols4, (float4*)o.p);
    };
    o.poison();
    run();
    CK_LAUNCH();
    const auto xh = x.host(), oh = o.host();
    std::vector<double> want(C, 0.0), mag(C, 0.0);
    for (size_t r = 0; r < R; ++r)
      for (size_t c = 0; c < C; ++c) want[c] += xh[r * C + c], mag[c] += std::fabs(xh[r * C + c]);
    double err = 0;
    for (size_t c = 0; c < C; ++c) err = std::max(err, std::isfinite(oh[c]) ? std::fabs(oh[c] - want[c]) / mag[c] : INFINITY);
    const double bytes = (R * C + C) * 4.0;
    report("W6/colsum", "device copy, same bytes", copy_ms(R * C * sizeof(float) / 2), bytes, 0, 0);
    if (err <= 1e-6)
      report("W6/colsum", "hand-written CUDA (row strips)", median_ms(run), bytes, 0, err);
    else
      report("W6/colsum", "hand-written CUDA (row strips)", 0, 0, 0, err, "wrong result");
  }
}

#ifdef LOOM_WITH_CUBLASLT
#define LT(call)                                                                          \
  do {                                                                                    \
    cublasStatus_t s_ = (call);                                                           \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                    \
      std::fprintf(stderr, "%s:%d: %s: cuBLAS status %d\n", __FILE__, __LINE__, #call, (int)s_); \
      std::exit(2);                                                                       \
    }                                                                                     \
  } while (0)

/// Row-major D[M,N] = epilogue(A[M,K] @ B[K,N] + beta * C + bias[N]) through cuBLASLt, as the
/// column-major problem D^T = B^T A^T (so the bias runs along D^T's rows: cuBLASLt's bias).
struct lt_gemm {
  cublasLtHandle_t h;
  cublasLtMatmulDesc_t op;
  cublasLtMatrixLayout_t la, lb, lc;
  cublasLtMatmulAlgo_t algo;
  void* ws = nullptr;
  size_t ws_size = 64u << 20;
  lt_gemm(cublasLtHandle_t handle, size_t M, size_t N, size_t K, bool tf32, cublasLtEpilogue_t epi, const float* bias)
      : h(handle) {
    LT(cublasLtMatmulDescCreate(&op, tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    if (bias != nullptr) LT(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    LT(cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, N, K, N));  // B^T
    LT(cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, K, M, K));  // A^T
    LT(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, N, M, N));  // D^T (and C^T)
    CK(cudaMalloc(&ws, ws_size));
    cublasLtMatmulPreference_t pref;
    LT(cublasLtMatmulPreferenceCreate(&pref));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_size, sizeof(ws_size)));
    cublasLtMatmulHeuristicResult_t res{};
    int found = 0;
    LT(cublasLtMatmulAlgoGetHeuristic(h, op, la, lb, lc, lc, pref, 1, &res, &found));
    LT(cublasLtMatmulPreferenceDestroy(pref));
    if (found == 0) {
      std::fprintf(stderr, "cuBLASLt: no algorithm for this problem\n");
      std::exit(2);
    }
    algo = res.algo;
  }
  ~lt_gemm() {
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(op);
    cudaFree(ws);
  }
  void operator()(const float* A, const float* B, float* D, const float* C = nullptr) const {
    const float alpha = 1.f, beta = C != nullptr ? 1.f : 0.f;
    LT(cublasLtMatmul(h, op, &alpha, B, la, A, lb, &beta, C != nullptr ? C : D, lc, D, lc, &algo, ws, ws_size, 0));
  }
};

/// Float64 rows of A[rows] @ B (+ bias), from host copies.
std::vector<double> gemm_rows_ref(const std::vector<float>& Arows, size_t nr, const std::vector<float>& B, size_t N,
                                  size_t K) {
  std::vector<double> o(nr * N, 0.0);
  for (size_t i = 0; i < nr; ++i)
    for (size_t k = 0; k < K; ++k) {
      const double a = Arows[i * K + k];
      const float* b = B.data() + k * N;
      double* oi = o.data() + i * N;
      for (size_t j = 0; j < N; ++j) oi[j] += a * b[j];
    }
  return o;
}

void run_gemms(size_t M, size_t N, size_t K, size_t T, size_t D) {
  cublasLtHandle_t h;
  LT(cublasLtCreate(&h));
  const double flops = 2.0 * M * N * K;
  dbuf A(M * K), B(K * N), bias(N), O(M * N);
  A.random(51);
  B.random(52);
  bias.random(53);
  const auto rs = sample_rows(M, 4);
  std::vector<float> Arows;
  for (size_t r : rs) {
    const auto a = A.host(r * K, K);
    Arows.insert(Arows.end(), a.begin(), a.end());
  }
  const auto Bh = B.host(), biash = bias.host();
  const auto base = gemm_rows_ref(Arows, rs.size(), Bh, N, K);
  for (int tf32 = 0; tf32 < 2; ++tf32) {
    const double tol = tf32 ? 5e-3 : 1e-4;
    for (int w8 = 0; w8 < 2; ++w8) {
      const char* w = w8 ? "W8" : "W7";
      const char* v = tf32 ? (w8 ? "cuBLASLt GELU_BIAS (TF32)" : "cuBLASLt (TF32)")
                           : (w8 ? "cuBLASLt GELU_BIAS (float32)" : "cuBLASLt (float32)");
      lt_gemm g(h, M, N, K, tf32 != 0, w8 ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_DEFAULT,
                w8 ? bias.p : nullptr);
      O.poison();
      g(A.p, B.p, O.p);
      CK(cudaDeviceSynchronize());
      std::vector<float> got;
      std::vector<double> want(base);
      for (size_t i = 0; i < rs.size(); ++i) {
        const auto o = O.host(rs[i] * N, N);
        got.insert(got.end(), o.begin(), o.end());
        if (w8)
          for (size_t j = 0; j < N; ++j) want[i * N + j] = gelu_ref(want[i * N + j] + biash[j]);
      }
      const double err = rel_err(got, want);
      if (err <= tol)
        report(w, v, median_ms([&] { g(A.p, B.p, O.p); }, 10), 0, flops, err);
      else
        report(w, v, 0, 0, 0, err, "wrong result");
    }
  }

  // W9: o = x + (gelu(layernorm(x) @ W1 + b1) @ W2 + b2), T tokens, width D, hidden 4D.
  {
    const size_t H = 4 * D;
    dbuf x(T * D), gam(D), bet(D), W1(D * H), b1(H), W2(H * D), b2(D), ln(T * D), act(T * H), out(T * D);
    x.random(61);
    gam.random(62);
    bet.random(63);
    W1.random(64, 1.f / std::sqrt(float(D)));
    b1.random(65);
    W2.random(66, 1.f / std::sqrt(float(H)));
    b2.random(67);
    const double f9 = 2.0 * 2.0 * T * D * H;
    const auto ts = sample_rows(T, 4);
    const auto gh = gam.host(), bh = bet.host(), w1h = W1.host(), b1h = b1.host(), w2h = W2.host(), b2h = b2.host();
    std::vector<double> want;
    std::vector<float> xs;
    for (size_t t : ts) {
      const auto xr = x.host(t * D, D);
      xs.insert(xs.end(), xr.begin(), xr.end());
      std::vector<double> l(D);
      layernorm_ref(xr.data(), gh.data(), bh.data(), D, l.data());
      std::vector<double> a(H, 0.0);
      for (size_t k = 0; k < D; ++k)
        for (size_t j = 0; j < H; ++j) a[j] += l[k] * w1h[k * H + j];
      for (size_t j = 0; j < H; ++j) a[j] = gelu_ref(a[j] + b1h[j]);
      std::vector<double> o(D, 0.0);
      for (size_t k = 0; k < H; ++k)
        for (size_t j = 0; j < D; ++j) o[j] += a[k] * w2h[k * D + j];
      for (size_t j = 0; j < D; ++j) want.push_back(o[j] + b2h[j] + xr[j]);
    }
    for (int tf32 = 0; tf32 < 2; ++tf32) {
      lt_gemm up(h, T, H, D, tf32 != 0, CUBLASLT_EPILOGUE_GELU_BIAS, b1.p);
      lt_gemm down(h, T, D, H, tf32 != 0, CUBLASLT_EPILOGUE_BIAS, b2.p);
      auto run = [&] {
        layernorm(x.p, gam.p, bet.p, ln.p, T, D);
        up(ln.p, W1.p, act.p);
        down(act.p, W2.p, out.p, x.p);
      };
      out.poison();
      run();
      CK(cudaDeviceSynchronize());
      std::vector<float> got;
      for (size_t t : ts) {
        const auto o = out.host(t * D, D);
        got.insert(got.end(), o.begin(), o.end());
      }
      const double err = rel_err(got, want);
      const char* v = tf32 ? "W4 kernel + 2 cuBLASLt (TF32)" : "W4 kernel + 2 cuBLASLt (float32)";
      if (err <= (tf32 ? 5e-3 : 1e-4))
        report("W9", v, median_ms(run, 10), 0, f9, err);
      else
        report("W9", v, 0, 0, 0, err, "wrong result");
    }
  }
  LT(cublasLtDestroy(h));
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const char* json = nullptr;
  bool small = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--small") == 0)
      small = true;
    else
      json = argv[i];
  }
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("no CUDA device\n");
    return 3;
  }
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s (sm_%d%d), %d SMs\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
  // The GPU sizes of WORKLOADS.md (--small: a quick check of the same code).
  const size_t N = small ? (1u << 20) : (size_t(1) << 28), R = small ? 256 : 16384, C = small ? 1024 : 4096;
  run_rows(R, C);
  run_sums(N, R, C);
#ifdef LOOM_WITH_CUBLASLT
  const size_t G = small ? 512 : 8192;
  run_gemms(G, G, G, small ? 256 : 8192, small ? 1024 : 4096);
#else
  std::printf("W7-W9: built without cuBLASLt (-DLOOM_WITH_CUBLASLT -lcublasLt): not measured\n");
#endif
  if (json != nullptr) {
    FILE* f = std::fopen(json, "w");
    if (f == nullptr) return 2;
    std::fprintf(f, "{\"device\": \"%s\", \"sm_count\": %d, \"small\": %s, \"rows\": [\n", prop.name,
                 prop.multiProcessorCount, small ? "true" : "false");
    for (size_t i = 0; i < rows.size(); ++i) {
      const row& r = rows[i];
      std::fprintf(f,
                   "  {\"workload\": \"%s\", \"variant\": \"%s\", \"status\": \"%s\", \"ms\": %.5f, \"gbps\": %.2f, "
                   "\"tflops\": %.3f, \"err\": %.3e}%s\n",
                   r.workload.c_str(), r.variant.c_str(), r.status.c_str(), r.ms, r.gbps, r.tflops,
                   std::isfinite(r.err) ? r.err : 1e300, i + 1 < rows.size() ? "," : "");
    }
    std::fprintf(f, "]}\n");
    std::fclose(f);
  }
  return 0;
}
