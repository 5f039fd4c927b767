// tests/reference/fuzz_harness.hpp: runs generated expressions through loom and the reference.
//
// tools/fuzz/gen.py writes cases like
//
//   static void case_17(loom_fuzz::context& ctx) {
//     loom_fuzz::tensor_input<float, loom::shape<17, loom::dyn>> a(loom::shape<17, loom::dyn>{4097});
//     loom_fuzz::strided_input<std::int32_t, loom::shape<loom::dyn>> b(loom::shape<loom::dyn>{15}, {-2}, 1);
//     auto make = [](const auto& a, const auto& b) { return exp(a) + cast<float>(b); };
//     loom_fuzz::run_case(ctx, make, std::tie(a, b), loom_fuzz::to_eval{}, loom_fuzz::to_compound<double, '+'>{});
//   }
//
// run_case() fills the inputs (several rounds: ordinary values; NaN, infinities, -0.0, denormals,
// huge and tiny values, integer extremes; wide magnitudes), builds the expression once per round,
// evaluates it with loom_ref::evaluate, and then with loom in each of the case's output modes:
// eval(), assignment into a tensor of another dtype or shape, compound assignment, assignment into
// a strided view of a guarded buffer, assignment into one of its own inputs (aliasing), a
// destination overlapping an input with other strides, a thread-count comparison, and a
// mismatched destination that must throw and stay untouched. Each result is compared element by
// element with the reference's enclosures. Where loom/cuda.hpp is included first (LOOM_FUZZ_CUDA),
// every case also compiles its CUDA kernel with NVRTC, and runs it where a device is present
// (LOOM_FUZZ_GPU). A failure reports the seeds, the expression, loom::explain and the first
// mismatches, and writes a one-file reproducer.
#pragma once

#include <loom/loom.hpp>
#if defined(LOOM_FUZZ_CUDA) || defined(LOOM_FUZZ_GPU)
#include <loom/cuda.hpp>
#endif

#include <array>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "reference/reference.hpp"

namespace loom_fuzz {

using loom::dims;
using loom::dtype;
using loom::index_t;
using loom_ref::elem;
using loom_ref::ref_array;

// =============================================================================================
// Random numbers and input values
// =============================================================================================

/// splitmix64: the same stream on every platform and standard library.
struct rng {
  std::uint64_t s;
  explicit rng(std::uint64_t seed) : s(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1p-53; }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  std::int64_t below(std::int64_t n) { return n <= 0 ? 0 : std::int64_t(next() % std::uint64_t(n)); }
  bool chance(double p) { return uniform() < p; }
};

inline std::uint64_t mix(std::uint64_t a, std::uint64_t b) { return rng(a * 0x2545f4914f6cdd1dull ^ b).next(); }

/// How a round draws its inputs.
enum class fill_mode { ordinary, special, wide };
inline const char* fill_name(fill_mode m) {
  return m == fill_mode::ordinary ? "ordinary" : m == fill_mode::special ? "special" : "wide";
}

template <class T>
T draw(rng& g, fill_mode m) {
  if constexpr (std::is_same_v<T, bool>) {
    return g.chance(0.5);
  } else if constexpr (std::is_integral_v<T>) {
    using L = std::numeric_limits<T>;
    if (m == fill_mode::ordinary) return T(g.below(21) - 10);
    if (m == fill_mode::special && g.chance(0.3)) {
      const T edge[] = {0, 1, T(-1), L::min(), L::max(), T(L::min() + 1), T(L::max() - 1), 2, T(-2)};
      return edge[g.below(9)];
    }
    if (m == fill_mode::wide && g.chance(0.5)) return static_cast<T>(g.next());
    return T(g.below(2001) - 1000);
  } else {
    using L = std::numeric_limits<T>;
    if (m == fill_mode::ordinary) return T(g.uniform(-2.0, 2.0));
    if (m == fill_mode::special && g.chance(0.25)) {
      switch (g.below(16)) {
        case 0: return L::quiet_NaN();
        case 1: return L::infinity();
        case 2: return -L::infinity();
        case 3: return T(-0.0);
        case 4: return T(0);
        case 5: return L::denorm_min();
        case 6: return -L::denorm_min() * T(g.below(1000) + 1);
        case 7: return L::min() * T(g.uniform(-1, 1));  // a denormal
        case 8: return g.chance(0.5) ? L::max() : L::lowest();
        case 9: return T(g.chance(0.5) ? 1e30 : -1e30);
        case 10: return T(g.chance(0.5) ? 1e-30 : -1e-30);
        case 11: return T(double(g.below(9) - 4) + 0.5);  // halves: round's ties
        case 12: return T(double(g.below(21) - 10));      // integers
        case 13: return L::min();
        case 14: return T(g.chance(0.5) ? 88.5 : -88.5);  // near float exp's range ends
        default: return T(1);
      }
    }
    if (m == fill_mode::wide) {
      const double mag = std::ldexp(g.uniform(1.0, 2.0), int(g.below(81)) - 40);
      return T(g.chance(0.5) ? mag : -mag);
    }
    return T(g.uniform(-2.0, 2.0));
  }
}

template <class T>
void fill_values(T* p, std::size_t n, rng& g, fill_mode m) {
  for (std::size_t i = 0; i < n; ++i) p[i] = draw<T>(g, m);
}

/// A subexpression evaluated into a temporary tensor that the expression then owns (a leaf held
/// by value): loom::eval on the host. An expression of device arrays is left as it is (the CUDA
/// kernel fuses it; materialising on the device is not what the corpus checks).
template <class E>
auto materialize(const E& e) {
  if constexpr (std::remove_cvref_t<E>::space == loom::memory_space::device)
    return loom::as_node(e);
  else
    return loom::eval(e);
}

// =============================================================================================
// Inputs: tensors, contiguous views, strided views
// =============================================================================================

template <std::size_t R>
using strides_t = std::array<index_t, R>;

/// A named tensor operand (held by reference in the expression).
template <class T, class S>
struct tensor_input {
  using value_type = T;
  using shape_type = S;
  loom::tensor<T, S> t;
  explicit tensor_input(const S& s) : t(s) {}
  const loom::tensor<T, S>& leaf() const { return t; }
  void fill(rng& g, fill_mode m) { fill_values(t.data(), t.size(), g, m); }
  std::vector<unsigned char> snapshot() const {
    const auto* p = reinterpret_cast<const unsigned char*>(t.data());
    return {p, p + t.size() * sizeof(T)};
  }
  void restore(const std::vector<unsigned char>& b) {
    if (!b.empty()) std::memcpy(static_cast<void*>(t.data()), b.data(), b.size());
  }
  const char* kind() const { return "tensor"; }
};

/// A read-only view of user memory, row-major (contiguous_layout) at `misalign` elements past a
/// 64-byte boundary, or with explicit strides (any sign, 0 to repeat) inside a larger buffer.
template <class T, class S, bool Strided>
struct view_input {
  using value_type = T;
  using shape_type = S;
  static constexpr std::size_t R = S::rank;
  S shape;
  strides_t<R> strides{};
  index_t offset = 0;
  loom::tensor<T, loom::shape<loom::dyn>> buf;

  view_input(const S& s, const strides_t<R>& st, index_t misalign)
      : shape(s), strides(Strided ? st : loom::detail::row_major_strides(s)), offset(first(s, strides) + misalign),
        buf(static_cast<std::size_t>(offset + last(s, strides) + 1 + 3)) {}
  /// How far below and above the first element the view reaches.
  static index_t first(const S& s, const strides_t<R>& st) {
    index_t lo = 0;
    if (s.size() == 0) return 0;  // an empty view reaches nothing
    for (std::size_t k = 0; k < R; ++k)
      if (s.extent(k) > 0 && st[k] < 0) lo -= st[k] * (index_t(s.extent(k)) - 1);
    return lo;
  }
  static index_t last(const S& s, const strides_t<R>& st) {
    index_t hi = 0;
    if (s.size() == 0) return 0;
    for (std::size_t k = 0; k < R; ++k)
      if (s.extent(k) > 0 && st[k] > 0) hi += st[k] * (index_t(s.extent(k)) - 1);
    return hi;
  }
  auto leaf() const {
    const T* p = buf.data() + offset;
    if constexpr (Strided)
      return loom::view(p, shape, strides);
    else
      return loom::view(p, shape);
  }
  /// A writable view of the same memory with other strides (for overlapping destinations).
  void fill(rng& g, fill_mode m) { fill_values(buf.data(), buf.size(), g, m); }
  std::vector<unsigned char> snapshot() const {
    const auto* p = reinterpret_cast<const unsigned char*>(buf.data());
    return {p, p + buf.size() * sizeof(T)};
  }
  void restore(const std::vector<unsigned char>& b) {
    if (!b.empty()) std::memcpy(static_cast<void*>(buf.data()), b.data(), b.size());
  }
  const char* kind() const { return Strided ? "strided view" : "view"; }
};
template <class T, class S>
using contiguous_input = view_input<T, S, false>;
template <class T, class S>
using strided_input = view_input<T, S, true>;

// =============================================================================================
// Statistics, failures, context
// =============================================================================================

struct stats {
  std::uint64_t cases = 0, rounds = 0, checks = 0, elements = 0, ambiguous = 0, failures = 0;
  std::uint64_t cuda_compiled = 0, cuda_unsupported = 0, gpu_runs = 0, gpu_skipped = 0;
  std::map<std::string, std::uint64_t> unsupported_kinds;  // node kind -> cases
  std::map<std::string, std::uint64_t> modes;              // output mode -> checks
  std::string summary() const {
    std::ostringstream os;
    os << cases << " cases, " << rounds << " rounds, " << checks << " checks, " << elements
       << " elements compared, " << ambiguous << " ambiguous (not compared), " << failures << " failures";
    os << "; cuda: " << cuda_compiled << " kernels compiled with NVRTC, " << cuda_unsupported
       << " cases without a CUDA generator";
    if (!unsupported_kinds.empty()) {
      os << " (";
      bool first = true;
      for (auto& [k, n] : unsupported_kinds) {
        os << (first ? "" : ", ") << k << " " << n;
        first = false;
      }
      os << ")";
    }
    if (gpu_runs || gpu_skipped) os << "; gpu: " << gpu_runs << " cases run, " << gpu_skipped << " skipped";
    os << "; modes:";
    for (auto& [k, n] : modes) os << " " << k << "=" << n;
    return os.str();
  }
};

inline stats& global_stats() {
  static stats s;
  return s;
}

/// What the generator knows about a case.
struct case_info {
  int id = 0;
  std::uint64_t corpus_seed = 0;  ///< gen.py --seed of the corpus
  const char* expr = "";          ///< the expression as written in C++
  const char* source = "";        ///< the case function's source (for the reproducer)
  const char* corpus = "";        ///< the file it comes from
};

struct context {
  std::uint64_t data_seed = 1;  ///< seeds the inputs (with the case id and round)
  int rounds = 3;
  int only_round = -1;          ///< >= 0: run just this round (reproducers)
  bool cuda_compile = true;     ///< compile CUDA kernels (where loom/cuda.hpp is in)
  bool gpu = false;             ///< run on the device where there is one
  std::string repro_dir = ".";  ///< where reproducers are written
  std::function<void(const std::string&)> on_failure;  ///< default: print to stderr
  stats* st = &global_stats();
  bool verbose = std::getenv("LOOM_FUZZ_VERBOSE") != nullptr;  ///< one line per case on stderr
  // current position, for messages
  const case_info* ci = nullptr;
  int round = 0;
  fill_mode fill = fill_mode::ordinary;
};

inline std::string dtype_str(dtype t) { return std::string(loom::dtype_name(t)); }

inline std::string fmt(double x) {
  char b[64];
  std::snprintf(b, sizeof b, "%.9g", x);
  return b;
}

/// Writes the one-file reproducer of the current case and returns its path.
inline std::string write_reproducer(const context& ctx, const std::string& mode) {
  const case_info& ci = *ctx.ci;
  const std::string path = ctx.repro_dir + "/loom_fuzz_repro_" + std::to_string(ci.corpus_seed) + "_" +
                           std::to_string(ci.id) + ".cpp";
  std::ofstream f(path);
  if (!f) return "(could not write " + path + ")";
  f << "// Reproducer of loom fuzz case " << ci.id << " of corpus seed " << ci.corpus_seed << " (" << ci.corpus
    << "), data seed " << ctx.data_seed << ", round " << ctx.round << " (" << fill_name(ctx.fill) << " inputs), mode "
    << mode << ".\n"
    << "// Build from the repository root:\n"
    << "//   g++ -std=c++20 -O2 -march=native -Iinclude -Itests " << path << " -o repro && ./repro\n"
    << "#include \"reference/fuzz_harness.hpp\"\n"
    << "using namespace loom;\n\n"
    << ci.source << "\n\n"
    << "int main() {\n"
    << "  loom_fuzz::context ctx;\n"
    << "  ctx.data_seed = " << ctx.data_seed << "ull;\n"
    << "  ctx.only_round = " << ctx.round << ";\n"
    << "  ctx.cuda_compile = false;\n"
    << "  case_" << ci.id << "(ctx);\n"
    << "  std::printf(\"%s\\n\", loom_fuzz::global_stats().summary().c_str());\n"
    << "  return loom_fuzz::global_stats().failures ? 1 : 0;\n"
    << "}\n";
  return path;
}

/// loom::explain(e), or what went wrong printing it.
template <class E>
std::string explain_of(const E& e) {
  try {
    return loom::explain(e);
  } catch (const std::exception& x) {
    return std::string("  (explain threw: ") + x.what() + ")\n";
  }
}

/// Reports a failure of the current case: seeds, expression, plan, what differs, reproducer.
inline void fail(context& ctx, const std::string& mode, const std::string& explained, const std::string& what) {
  ++ctx.st->failures;
  const case_info& ci = *ctx.ci;
  std::ostringstream os;
  os << "loom fuzz FAILURE: corpus seed " << ci.corpus_seed << ", case " << ci.id << " (" << ci.corpus
     << "), data seed " << ctx.data_seed << ", round " << ctx.round << " (" << fill_name(ctx.fill)
     << " inputs), mode " << mode << "\n  expression: " << ci.expr << "\n"
     << explained << what << "  reproducer: " << write_reproducer(ctx, mode) << "\n";
  if (ctx.on_failure)
    ctx.on_failure(os.str());
  else
    std::fprintf(stderr, "%s\n", os.str().c_str());
}

// =============================================================================================
// Comparing loom's results with the reference
// =============================================================================================

struct comparison {
  std::size_t checked = 0, ambiguous = 0, bad = 0;
  std::string first;  // the first mismatches, described
};

/// Compares the array at p (strides st, shape of want) element by element with want.
template <class U, std::size_t R>
comparison compare(const U* p, const std::array<index_t, R>& st, const ref_array& want) {
  comparison c;
  if (want.type != loom::dtype_of<U>) {
    c.bad = 1;
    c.first = "  the reference has dtype " + dtype_str(want.type) + ", loom's result " + dtype_str(loom::dtype_of<U>) + "\n";
    return c;
  }
  loom_ref::for_each_index(want.shape, [&](std::size_t flat, const auto& idx) {
    index_t off = 0;
    for (std::size_t k = 0; k < R; ++k) off += index_t(idx[k]) * st[k];
    const U got = p[off];
    const elem& w = want.e[flat];
    if (w.any) {
      ++c.ambiguous;
      return;
    }
    ++c.checked;
    bool ok;
    if constexpr (std::is_floating_point_v<U>) {
      const double g = static_cast<double>(got);
      ok = std::isnan(w.v) ? std::isnan(g) : (!std::isnan(g) && w.lo <= g && g <= w.hi);
    } else {
      ok = static_cast<std::int64_t>(got) == w.i;
    }
    if (!ok && c.bad++ < 6) {
      std::string at = "[";
      for (std::size_t k = 0; k < R; ++k) at += (k ? ", " : "") + std::to_string(idx[k]);
      at += "]";
      c.first += "  at " + at + ": loom " + fmt(static_cast<double>(got)) + ", reference " + fmt(w.v);
      if constexpr (std::is_floating_point_v<U>) c.first += " (accepting [" + fmt(w.lo) + ", " + fmt(w.hi) + "])";
      c.first += "\n";
    }
  });
  return c;
}

template <class E, class U, std::size_t R>
void check_result(context& ctx, const std::string& mode, const E& e, const U* p, const std::array<index_t, R>& st,
                  const ref_array& want) {
  ++ctx.st->checks;
  ++ctx.st->modes[mode.substr(0, mode.find(' '))];
  const comparison c = compare(p, st, want);
  ctx.st->elements += c.checked;
  ctx.st->ambiguous += c.ambiguous;
  if (c.bad)
    fail(ctx, mode, explain_of(e), "  " + std::to_string(c.bad) + " of " + std::to_string(c.checked) + " elements differ (" +
                            std::to_string(c.ambiguous) + " ambiguous); result dtype " + dtype_str(want.type) +
                            " shape " + loom::to_string(want.shape) + "\n" + c.first);
}

template <class A>
void check_array(context& ctx, const std::string& mode, const auto& e, const A& a, const ref_array& want) {
  if (!(a.shape().to_dims() == want.shape)) {
    fail(ctx, mode, explain_of(e), "  loom's result has shape " + loom::to_string(a.shape().to_dims()) + ", the reference " +
                            loom::to_string(want.shape) + "\n");
    return;
  }
  check_result(ctx, mode, e, a.data(), a.strides(), want);
}

// =============================================================================================
// Shapes for destinations
// =============================================================================================

template <std::size_t>
inline constexpr std::size_t dyn_for = loom::dyn;
template <class S>
struct all_dyn;
template <std::size_t... Es>
struct all_dyn<loom::shape<Es...>> {
  using type = loom::shape<dyn_for<Es>...>;
};
template <class S>
struct prepend_dyn;
template <std::size_t... Es>
struct prepend_dyn<loom::shape<Es...>> {
  using type = loom::shape<loom::dyn, Es...>;
};
template <class S>
using all_dyn_t = typename all_dyn<S>::type;

template <class E>
using shape_of_t = loom::shape_type_of<E>;
template <class E>
using value_of_t = loom::value_type_of<E>;

/// The reference of `dst op= e` for a destination of dtype U holding `old`.
template <class U, char Op, class E>
ref_array compound_reference(const ref_array& old, const E& e, const ref_array& ref_e, const dims& dst) {
  using op = std::conditional_t<Op == '+', loom::ops::add,
                                std::conditional_t<Op == '-', loom::ops::sub,
                                                   std::conditional_t<Op == '*', loom::ops::mul, loom::ops::div>>>;
  using N = decltype(loom::detail::make_map<op>(std::declval<const loom::tensor<U, all_dyn_t<shape_of_t<E>>>&>(), e));
  const loom_ref::op_id id = loom_ref::op_from_name(op::name);
  ref_array r = loom_ref::detail::map_arrays(id, loom::dtype_of<typename N::compute_type>,
                                             loom::dtype_of<typename N::value_type>, {old, ref_e});
  return loom_ref::assigned(r, dst, loom::dtype_of<U>);
}

template <class A>
ref_array reference_of(const A& a) {
  return loom_ref::evaluate(a);
}

template <class T>
void fill_dst(T* p, std::size_t n, rng& g, fill_mode m) {
  fill_values(p, n, g, m);
}

// =============================================================================================
// Output modes
// =============================================================================================

/// eval(e): a new tensor of the expression's own type.
struct to_eval {
  template <class E, class Ins>
  void run(context& ctx, const E& e, const ref_array& ref, Ins&) const {
    auto out = loom::eval(e);
    check_array(ctx, "eval", e, out, ref);
  }
};

/// dst = e for a tensor of dtype U; Extra > 0 prepends an axis of that extent (the expression
/// broadcasts into it); Dyn makes every extent of the destination dyn.
template <class U, std::size_t Extra = 0, bool Dyn = false>
struct to_assign {
  template <class E, class Ins>
  void run(context& ctx, const E& e, const ref_array& ref, Ins&) const {
    using S0 = std::conditional_t<Dyn, all_dyn_t<shape_of_t<E>>, shape_of_t<E>>;
    using S = std::conditional_t<(Extra > 0), typename prepend_dyn<S0>::type, S0>;
    dims d = ref.shape;
    if constexpr (Extra > 0) {
      for (std::size_t k = d.rank; k > 0; --k) d.e[k] = d.e[k - 1];
      d.e[0] = Extra;
      ++d.rank;
    }
    loom::tensor<U, S> dst(S::from_dims(d));
    rng g(mix(ctx.data_seed, 77));
    fill_dst(dst.data(), dst.size(), g, fill_mode::special);
    dst = e;
    check_array(ctx, std::string("assign to ") + dtype_str(loom::dtype_of<U>) + (Extra ? " (broadcast)" : "") +
                         (Dyn ? " (dyn)" : ""),
                e, dst, loom_ref::assigned(ref, d, loom::dtype_of<U>));
  }
};

/// dst op= e for a tensor of dtype U (the expression's shape) holding drawn values.
template <class U, char Op>
struct to_compound {
  template <class E, class Ins>
  void run(context& ctx, const E& e, const ref_array& ref, Ins&) const {
    using S = all_dyn_t<shape_of_t<E>>;
    loom::tensor<U, S> dst(S::from_dims(ref.shape));
    rng g(mix(ctx.data_seed, 78 + ctx.round));
    fill_dst(dst.data(), dst.size(), g, ctx.fill);
    const ref_array old = reference_of(dst);
    const ref_array want = compound_reference<U, Op>(old, e, ref, ref.shape);
    if constexpr (Op == '+') dst += e;
    else if constexpr (Op == '-') dst -= e;
    else if constexpr (Op == '*') dst *= e;
    else dst /= e;
    check_array(ctx, std::string("compound ") + Op + "= into " + dtype_str(loom::dtype_of<U>), e, dst, want);
  }
};

/// dst = e (or dst += e) through a strided view of a larger buffer whose other elements are
/// guards: axis order reversed where Transposed, every axis stepping by Step, the first axis
/// walking backwards where Negative. The guards must be untouched.
template <class U, int Step, bool Transposed, bool Negative, bool Add = false>
struct to_view {
  template <class E, class Ins>
  void run(context& ctx, const E& e, const ref_array& ref, Ins&) const {
    using S = shape_of_t<E>;
    constexpr std::size_t R = S::rank;
    const dims d = ref.shape;
    std::array<index_t, R> st{};
    index_t acc = Step;
    for (std::size_t j = 0; j < R; ++j) {
      const std::size_t k = Transposed ? j : R - 1 - j;  // innermost first
      st[k] = acc;
      acc *= index_t(std::max<std::size_t>(d.e[k], 1)) + (j == 0 ? 0 : 1);
    }
    index_t off = 1;
    if (Negative && R > 0) {
      st[0] = -st[0];
      off += -st[0] * (index_t(std::max<std::size_t>(d.e[0], 1)) - 1);
    }
    // An empty destination touches nothing: its strides stay as computed (the empty axes counted
    // as 1), but its buffer does not span them (seed 4000, case 148 asked for gigabytes).
    if (d.size() == 0) off = 1, acc = 1;
    const std::size_t n = std::size_t(off + acc + 2);
    loom::tensor<U, loom::shape<loom::dyn>> buf(n);  // (not std::vector: vector<bool> has no data())
    rng g(mix(ctx.data_seed, 79));
    fill_dst(buf.data(), n, g, fill_mode::special);
    const loom::tensor<U, loom::shape<loom::dyn>> before = buf;
    auto v = loom::view(buf.data() + off, S::from_dims(d), st);
    ref_array want = loom_ref::assigned(ref, d, loom::dtype_of<U>);
    if constexpr (Add) {
      const ref_array old = reference_of(v);
      want = compound_reference<U, '+'>(old, e, ref, d);
      v += e;
    } else {
      v = e;
    }
    const std::string mode = std::string("view ") + (Add ? "+= " : "") + "of " + dtype_str(loom::dtype_of<U>) +
                             " step " + std::to_string(Step) + (Transposed ? " transposed" : "") +
                             (Negative ? " negative" : "");
    check_result(ctx, mode, e, buf.data() + off, st, want);
    // Every element outside the view keeps its bits.
    std::vector<char> inside(n, 0);
    loom_ref::for_each_index(d, [&](std::size_t, const auto& idx) {
      index_t o = off;
      for (std::size_t k = 0; k < R; ++k) o += index_t(idx[k]) * st[k];
      inside[std::size_t(o)] = 1;
    });
    for (std::size_t i = 0; i < n; ++i)
      if (!inside[i] && std::memcmp(buf.data() + i, before.data() + i, sizeof(U)) != 0) {
        fail(ctx, mode, explain_of(e), "  the assignment wrote outside the destination view (buffer element " + std::to_string(i) + ")\n");
        break;
      }
  }
};

/// Input I = e: the expression reads its own destination (elementwise self-assignment, or through
/// index maps and reductions, which need a temporary). Input I is restored afterwards.
template <std::size_t I, char Op = '='>
struct to_alias {
  template <class E, class Ins>
  void run(context& ctx, const E& e, const ref_array& ref, Ins& ins) const {
    auto& in = std::get<I>(ins);
    using U = typename std::remove_cvref_t<decltype(in)>::value_type;
    const auto saved = in.snapshot();
    const ref_array old = reference_of(in.t);
    const dims d = old.shape;
    ref_array want;
    if constexpr (Op == '=') {
      want = loom_ref::assigned(ref, d, loom::dtype_of<U>);
      in.t = e;
    } else {
      want = compound_reference<U, '+'>(old, e, ref, d);
      in.t += e;
    }
    check_array(ctx, std::string("alias ") + (Op == '=' ? "=" : "+=") + " input " + std::to_string(I), e, in.t, want);
    in.restore(saved);
  }
};

/// A writable view of input I's buffer with its first axis reversed is assigned e: the
/// destination overlaps an operand with other strides, so loom must go through a temporary.
template <std::size_t I>
struct to_overlap {
  template <class E, class Ins>
  void run(context& ctx, const E& e, const ref_array& ref, Ins& ins) const {
    auto& in = std::get<I>(ins);
    using In = std::remove_cvref_t<decltype(in)>;
    using U = typename In::value_type;
    using S = typename In::shape_type;
    constexpr std::size_t R = S::rank;
    const dims d = in.shape.to_dims();
    if (!(d == ref.shape) || R == 0 || d.e[0] < 2) return;
    for (std::size_t k = 0; k < R; ++k)
      if (d.e[k] > 1 && in.strides[k] == 0) return;  // a repeating view is no destination
    const auto saved = in.snapshot();
    auto st = in.strides;
    index_t first = in.offset;
    first += st[0] * (index_t(d.e[0]) - 1);
    st[0] = -st[0];
    // the same elements, visited with the first axis reversed
    auto v = loom::view(const_cast<U*>(in.buf.data()) + first, in.shape, st);
    const ref_array want = loom_ref::assigned(ref, d, loom::dtype_of<U>);
    v = e;
    check_result(ctx, "overlap input " + std::to_string(I), e, v.data(), st, want);
    in.restore(saved);
  }
};

/// eval(e) with 1 thread and with 3 threads gives the same bits.
struct to_threads {
  template <class E, class Ins>
  void run(context& ctx, const E& e, const ref_array& ref, Ins&) const {
    const unsigned before = loom::num_threads();
    loom::set_num_threads(1);
    auto one = loom::eval(e);
    loom::set_num_threads(3);
    auto three = loom::eval(e);
    loom::set_num_threads(before);
    ++ctx.st->checks;
    ++ctx.st->modes["threads"];
    using U = value_of_t<E>;
    for (std::size_t i = 0; i < one.size(); ++i) {
      const U a = one.data()[i], b = three.data()[i];
      bool same = std::memcmp(&a, &b, sizeof(U)) == 0;
      if constexpr (std::is_floating_point_v<U>) same = same || (std::isnan(a) && std::isnan(b));
      if (!same) {
        fail(ctx, "threads", explain_of(e), "  element " + std::to_string(i) + ": " + fmt(double(a)) + " with 1 thread, " +
                                     fmt(double(b)) + " with 3\n");
        return;
      }
    }
    check_array(ctx, "threads (3)", e, three, ref);
  }
};

/// A destination whose shape the expression cannot be assigned to: shape_error, nothing written.
template <class U>
struct to_mismatch {
  template <class E, class Ins>
  void run(context& ctx, const E& e, const ref_array& ref, Ins&) const {
    using S = all_dyn_t<shape_of_t<E>>;
    if constexpr (S::rank > 0) {
      dims d = ref.shape;
      std::size_t k = d.rank;
      while (k > 0 && d.e[k - 1] == 1) --k;  // an extent of 1 broadcasts into anything
      if (k == 0) return;
      // An empty result grows another axis where it has one (seed 4002 case 6945: [64, 1025, 17,
      // 4097, 0] with its 0 made 1 was a destination of 18 GB, and the run was killed for memory).
      if (d.size() == 0)
        for (std::size_t j = d.rank; j-- > 0;)
          if (d.e[j] > 1) {
            k = j + 1;
            break;
          }
      d.e[k - 1] += 1;
      loom::tensor<U, S> dst(S::from_dims(d));
      rng g(mix(ctx.data_seed, 80));
      fill_dst(dst.data(), dst.size(), g, fill_mode::ordinary);
      const loom::tensor<U, S> before = dst;
      ++ctx.st->checks;
      ++ctx.st->modes["mismatch"];
      try {
        dst = e;
        fail(ctx, "mismatch", explain_of(e), "  assigning shape " + loom::to_string(ref.shape) + " to " + loom::to_string(d) +
                                      " did not throw\n");
      } catch (const loom::shape_error&) {
        if (std::memcmp(before.data(), dst.data(), dst.size() * sizeof(U)) != 0)
          fail(ctx, "mismatch", explain_of(e), "  a failed assignment changed the destination\n");
      }
    }
  }
};

// =============================================================================================
// CUDA: compile every case's kernel with NVRTC; run it where there is a device
// =============================================================================================

#if defined(LOOM_FUZZ_CUDA) || defined(LOOM_FUZZ_GPU)
/// The name of the first node kind in a cuda_error about a missing generator ("reduce_node", ...).
inline std::string unsupported_kind(const std::string& msg) {
  static const char* kinds[] = {"reduce_node", "permute_node", "slice_node", "flip_node", "broadcast_node",
                                "reshape_node", "concat_node", "pad_node", "iota_node", "full_node",
                                "matmul_node", "contract_node"};
  std::size_t best = std::string::npos;
  std::string name = "other";
  for (const char* k : kinds) {
    const std::size_t at = msg.find(k);
    if (at < best) {
      best = at;
      name = k;
    }
  }
  return name;
}

/// A device view standing for an input in codegen: same shape and strides, a fake address with
/// the input's alignment (kernels are only generated and compiled, never run, from these).
template <class T, class S>
auto device_leaf(const tensor_input<T, S>& in) {
  return loom::cuda::view(reinterpret_cast<const T*>(std::uintptr_t(1) << 32), in.t.shape());
}
template <class T, class S, bool Strided>
auto device_leaf(const view_input<T, S, Strided>& in) {
  const T* p = reinterpret_cast<const T*>(std::uintptr_t(1) << 32) + in.offset;
  if constexpr (Strided)
    return loom::cuda::view(p, in.shape, in.strides);
  else
    return loom::cuda::view(p, in.shape);
}

template <class Make, class Ins>
void cuda_compile_case(context& ctx, Make& make, Ins& ins) {
  try {
    auto de = std::apply([&](auto&... in) { return make(device_leaf(in)...); }, ins);
#ifdef LOOM_REF_HAS_MATMUL
    if constexpr (loom::has_matmul_v<loom::node_t<const decltype(de)&>>) {
      // a device matmul is refused when the expression is compiled (static_assert): not generated
      ++ctx.st->cuda_unsupported;
      ++ctx.st->unsupported_kinds["matmul_node"];
      return;
    } else
#endif
    {
      const loom::cuda::compiled_kernel k = loom::cuda::compile(de);
      if (k.cubin_bytes == 0) fail(ctx, "cuda compile", "", "  NVRTC gave an empty image\n");
      ++ctx.st->cuda_compiled;
    }
  } catch (const loom::jit_error& x) {
    fail(ctx, "cuda compile", "", std::string("  NVRTC failed: ") + x.what() + "\n");
  } catch (const loom::cuda_error& x) {
    const std::string msg = x.what();
    if (msg.find("no kernel generator") != std::string::npos) {
      ++ctx.st->cuda_unsupported;
      ++ctx.st->unsupported_kinds[unsupported_kind(msg)];
    } else if (!loom::cuda::nvrtc_available()) {
      ++ctx.st->cuda_unsupported;
      ++ctx.st->unsupported_kinds["no NVRTC"];
    } else {
      fail(ctx, "cuda compile", "", "  cuda_error: " + msg + "\n");
    }
  }
}
#endif

#if defined(LOOM_FUZZ_GPU)
template <class In>
auto device_copy(const In& in) {
  using T = typename In::value_type;
  using S = typename In::shape_type;
  loom::tensor<T, S> host = in.leaf();  // the logical contents, row-major
  loom::cuda::tensor<T, S> d(host.shape());
  loom::cuda::copy(d, host);
  return d;
}

template <class Make, class Ins>
void gpu_run_case(context& ctx, Make& make, Ins& ins, const ref_array& ref) {
  if (!loom::cuda::available()) {
    ++ctx.st->gpu_skipped;
    return;
  }
  auto devs = std::apply([&](auto&... in) { return std::make_tuple(device_copy(in)...); }, ins);
  try {
    auto de = std::apply([&](auto&... d) { return make(d...); }, devs);
    using E = decltype(de);
    auto out = loom::cuda::eval(de);
    loom::cuda::synchronize();
    loom::tensor<value_of_t<E>, shape_of_t<E>> host(out.shape());
    loom::cuda::copy(host, out);
    ++ctx.st->gpu_runs;
    ++ctx.st->checks;
    ++ctx.st->modes["gpu"];
    const comparison c = compare(host.data(), host.strides(), ref);
    ctx.st->elements += c.checked;
    if (c.bad)
      fail(ctx, "gpu", "", "  " + std::to_string(c.bad) + " of " + std::to_string(c.checked) +
                                         " elements differ on the device\n" + c.first);
  } catch (const loom::cuda_error& x) {
    if (std::string(x.what()).find("no kernel generator") == std::string::npos)
      fail(ctx, "gpu", "", std::string("  cuda_error: ") + x.what() + "\n");
    else
      ++ctx.st->gpu_skipped;
  }
}
#endif

// =============================================================================================
// Running a case
// =============================================================================================

/// Runs one generated case: `make` builds the expression from the inputs' leaves.
template <class Make, class Ins, class... Modes>
void run_case(context& ctx, const case_info& ci, Make make, Ins ins, const Modes&... modes) {
  ctx.ci = &ci;
  ++ctx.st->cases;
  const stats before = *ctx.st;
  for (int round = 0; round < ctx.rounds; ++round) {
    if (ctx.only_round >= 0 && round != ctx.only_round) continue;
    ctx.round = round;
    ctx.fill = round == 0 ? fill_mode::ordinary : round == 1 ? fill_mode::special : fill_mode::wide;
    rng g(mix(mix(ctx.data_seed, std::uint64_t(ci.id)), std::uint64_t(round)));
    std::apply([&](auto&... in) { (in.fill(g, ctx.fill), ...); }, ins);
    ++ctx.st->rounds;
    try {
      auto e = std::apply([&](auto&... in) { return make(in.leaf()...); }, ins);
      ref_array ref;
      try {
        ref = loom_ref::evaluate(e);
      } catch (const std::logic_error& x) {
        fail(ctx, "reference", explain_of(e), std::string("  the reference rejected the expression: ") + x.what() + "\n");
        continue;
      }
      (modes.run(ctx, e, ref, ins), ...);
#if defined(LOOM_FUZZ_GPU)
      if (ctx.gpu) gpu_run_case(ctx, make, ins, ref);
#endif
    } catch (const loom::error& x) {
      fail(ctx, "build/run", "", std::string("  loom threw: ") + x.what() + "\n");
    }
  }
#if defined(LOOM_FUZZ_CUDA)
  if (ctx.cuda_compile) cuda_compile_case(ctx, make, ins);
#endif
  if (ctx.verbose)
    std::fprintf(stderr, "case %d: %" PRIu64 " compared, %" PRIu64 " ambiguous, %" PRIu64 " failures: %s\n", ci.id,
                 ctx.st->elements - before.elements, ctx.st->ambiguous - before.ambiguous,
                 ctx.st->failures - before.failures, ci.expr);
  ctx.ci = nullptr;
}

}  // namespace loom_fuzz
