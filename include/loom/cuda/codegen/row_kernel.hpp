// loom/cuda/codegen/row_kernel.hpp: one kernel for an expression whose reductions run along its
// rows and are broadcast back along them -- softmax, log-softmax, layer norm, RMS norm.
//
// The iteration space (the destination's) splits into kept axes (one row each) and the trailing
// axes a row spans; every reduction in the expression reduces exactly those axes of an operand of
// the row's extents, with keepdims (cuda/rows.hpp checks the expression type and the run-time
// extents). A group of G threads takes a row (G = 32: a warp per row, for rows of up to 1024
// elements; G = 256: a block per row) and, for each reduction in order (nested ones first), folds
// its operand along the row -- thread t takes elements t, t + G, ... -- combines the threads'
// accumulators (a butterfly of warp shuffles, then, for a block, the warps' results in order
// through shared memory) and holds the result as a row value r<j>; then it writes the row of the
// expression with the row values in place of the reductions. The row is read from global memory
// once: the later passes over it find it in L1 or L2 (a row of 4096 floats is 16 KiB).
//
// A reduction that occurs twice (the max of softmax's exp(x - max(x)) written twice) is computed
// once where the launch finds both reading the same arrays: the kernel tests a flag per
// reduction. Deterministic: the threads' shares and the combining order are fixed by the shape.
#pragma once

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "loom/core/config.hpp"
#include "loom/core/dtype.hpp"
#include "loom/core/error.hpp"
#include "loom/cuda/codegen/emit.hpp"
#include "loom/cuda/codegen/kernel.hpp"
#include "loom/cuda/codegen/reduce_kernel.hpp"

namespace loom::cuda::codegen {

/// Threads per block of a row kernel.
inline constexpr int row_block_threads = 256;

/// One reduction of a row kernel.
struct row_stage {
  reduce_desc red;                ///< reducer, operand value type, result type (op.element unused)
  std::string element;            ///< the operand over x<k>, p.s<k> and earlier row values r<i>
  std::vector<std::size_t> reads; ///< the leaves its operand reads directly
  std::string key;                ///< equal keys: the same computation of other leaves and scalars
  std::size_t leaf_begin = 0, leaf_end = 0, scalar_begin = 0, scalar_end = 0;
  std::vector<std::size_t> twins; ///< earlier stages of the same key (candidates to reuse)
};

/// What a row kernel computes: the expression written (desc.element over leaves, scalars and row
/// values r<j>) and its reductions in the order they are computed.
struct row_desc {
  kernel_desc desc;                   ///< leaves, kinds, scalars of the whole expression; element: the row's output
  std::vector<std::size_t> out_reads; ///< the leaves the output reads directly
  std::vector<row_stage> stages;
  /// The row cache: the leaf whose row the cached kernels hold in registers (-1: none), the pass
  /// that loads it (a stage that is never skipped as a twin, or stages.size(): the output), and
  /// the leaves that may read the same array (a value of the same type and array rank, read in
  /// that pass or later).
  int cached = -1;
  std::size_t cached_pass = 0;
  std::vector<std::size_t> candidates;
};

namespace detail {

/// Whether c can be part of an identifier.
inline bool ident_char(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }

/// `text` with the number of every numbered name of an element -- leaves x<n>, row values r<n>,
/// arrays p.a<n>, scalars p.s<n> -- replaced by f(kind, n), kind 'x', 'r', 'a' or 's'.
template <class F>
std::string renumber_names(std::string_view text, F&& f) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const bool start = i == 0 || !ident_char(text[i - 1]);
    std::size_t digits = 0;
    char kind = 0;
    if ((text[i] == 'x' || text[i] == 'r') && start && (i == 0 || (text[i - 1] != '.' && text[i - 1] != ':'))) {
      digits = i + 1;
      kind = text[i];
    } else if ((text.compare(i, 3, "p.a") == 0 || text.compare(i, 3, "p.s") == 0) && start) {
      digits = i + 3;
      kind = text[i + 2];
    }
    std::size_t e = digits;
    while (digits && e < text.size() && text[e] >= '0' && text[e] <= '9') ++e;
    if (digits == 0 || e == digits || (e < text.size() && ident_char(text[e]))) {
      out += text[i++];
      continue;
    }
    out.append(text.substr(i, digits - i));
    out += std::to_string(f(kind, static_cast<std::size_t>(std::stoull(std::string(text.substr(digits, e - digits))))));
    i = e;
  }
  return out;
}

/// `text` with leaf numbers shifted down by l0 and scalar numbers by s0 (x5 -> x0, p.a5 -> p.a0,
/// p.s3 -> p.s0 for l0 = 5, s0 = 3): the key of a reduction's computation apart from which
/// leaves and scalars it reads.
LOOM_NOINLINE inline std::string renumbered(std::string_view text, std::size_t l0, std::size_t s0) {
  return renumber_names(text, [&](char kind, std::size_t n) { return kind == 'x' || kind == 'a' ? n - l0 : kind == 's' ? n - s0 : n; });
}

}  // namespace detail

/// The row description of an emission made with enable_rows(): `e` the expression written.
LOOM_NOINLINE inline row_desc describe_rows(const emit_state& st, emitted e, dtype dst) {
  row_desc r;
  r.desc.dst = dst;
  r.desc.value = e.type;
  r.desc.leaves = st.leaves();
  r.desc.kinds = st.kinds();
  r.desc.scalars = st.scalars();
  r.desc.element = std::move(e.text);
  for (std::size_t k = 0; k < st.leaves().size(); ++k)
    if (st.owner(k) < 0) r.out_reads.push_back(k);
  const auto& reds = st.reductions();
  for (std::size_t j = 0; j < reds.size(); ++j) {
    const emit_state::row_reduction& x = reds[j];
    row_stage s;
    s.red.reducer = x.reducer;
    s.red.op.value = x.operand.type;
    s.red.out = x.out;
    s.element = x.operand.text;
    s.leaf_begin = x.leaf_begin;
    s.leaf_end = x.leaf_end;
    s.scalar_begin = x.scalar_begin;
    s.scalar_end = x.scalar_end;
    for (std::size_t k = x.leaf_begin; k < x.leaf_end; ++k)
      if (st.owner(k) == static_cast<int>(j)) s.reads.push_back(k);
    if (!x.nested) {  // reductions holding others are not compared (their texts name row values)
      s.key = x.reducer + '|' + std::string(dtype_c_name(x.out)) + '|' + std::string(dtype_c_name(x.operand.type)) + '|' +
              detail::renumbered(x.operand.text, x.leaf_begin, x.scalar_begin);
      for (std::size_t k = x.leaf_begin; k < x.leaf_end; ++k)
        s.key += std::string(1, '|') + std::string(dtype_c_name(st.leaves()[k])) + char('0' + int(st.kinds()[k]));
      for (std::size_t k = x.scalar_begin; k < x.scalar_end; ++k) s.key += std::string(1, ',') + std::string(dtype_c_name(st.scalars()[k]));
      for (std::size_t i = 0; i < j; ++i)
        if (r.stages[i].key == s.key) s.twins.push_back(i);
    }
    r.stages.push_back(std::move(s));
  }
  // The cached leaf: the first value leaf of the first pass that always runs and reads one.
  const auto first_value = [&](const std::vector<std::size_t>& reads) -> int {
    for (std::size_t k : reads)
      if (r.desc.kind(k) == leaf_kind::value) return static_cast<int>(k);
    return -1;
  };
  for (std::size_t p = 0; p <= r.stages.size() && r.cached < 0; ++p) {
    if (p < r.stages.size() && !r.stages[p].twins.empty()) continue;
    r.cached = first_value(p < r.stages.size() ? r.stages[p].reads : r.out_reads);
    r.cached_pass = p;
  }
  if (r.cached >= 0) {
    const auto L = static_cast<std::size_t>(r.cached);
    for (std::size_t p = r.cached_pass; p <= r.stages.size(); ++p)
      for (std::size_t k : p < r.stages.size() ? r.stages[p].reads : r.out_reads)
        if (k != L && k < 64 && r.desc.kind(k) == leaf_kind::value && r.desc.leaves[k] == r.desc.leaves[L] &&
            st.ranks()[k] == st.ranks()[L])
          r.candidates.push_back(k);
  }
  return r;
}

/// The run-time shape of a row launch: R rows of C elements; the kept axes' extents, and per
/// array (destination first, then the leaves) the kept strides and the stride along the row.
struct row_launch {
  std::size_t kr = 1;  ///< kept rank (>= 1)
  std::array<index_t, max_rank> kext{};
  index_t R = 0, C = 0;
  int G = 32;  ///< threads per row
  /// The row cache: K elements of the cached leaf per thread in registers (0: no cache), in
  /// groups of V consecutive columns (V > 1: 16-byte loads; 1: one element at a time).
  int K = 0, V = 1;
  std::uint64_t hits = 0;  ///< bit k: leaf k reads the cached leaf's array with its strides
  bool ovec = false;       ///< the destination takes V-element stores (contiguous, aligned rows)
  /// The kernel for this binding: every repeated reduction reads its first twin's arrays (and,
  /// with the row cache, every candidate the cached array), so the kernel tests neither p.same
  /// nor p.hits: it copies the twin's row value and takes the row from registers, one path per
  /// pass (and, at up to 8 values a thread, keeps an operand the output repeats: see
  /// print_row_kernel).
  bool bound = false;
};

/// The row cache's group width for leaf type t: the elements of 16 bytes.
inline int row_vector_width(dtype t) { return static_cast<int>(16 / dtype_size(t)); }

/// Bytes of a row kernel's argument block (8 per pointer, count and stride; the reuse flags, the
/// cache's hits and vector flag; the scalars by decreasing size).
inline std::size_t row_args_size(const row_desc& d, std::size_t kr) {
  const std::size_t arrays = 1 + d.desc.leaves.size();
  std::size_t s = 8 * (arrays + 2 + kr + arrays * (kr + 1) + d.stages.size() + 2);
  for (dtype t : d.desc.scalars) s += dtype_size(t);
  return (s + 7) & ~std::size_t(7);
}

namespace detail {
/// The declarations of leaves `which` at column c ("const float x3 = p.a3[o3 + c * p.cs3];").
/// With the row cache (`cache`: the pass's candidates all read the cached array, as p.hits says)
/// the cached leaf and the candidates are v[i].
inline void put_row_loads(std::string& s, const row_desc& rd, const std::vector<std::size_t>& which, std::string_view indent,
                          bool cache = false) {
  const kernel_desc& d = rd.desc;
  for (std::size_t k : which) {
    const std::string n = std::to_string(k);
    const std::string off = "o" + n + " + (I)c * p.cs" + n;
    switch (d.kind(k)) {
      case leaf_kind::value: {
        const std::string load = "p.a" + n + "[" + off + "]";
        put(s, {indent, "const ", dtype_c_name(d.leaves[k]), " x", n, " = "});
        if (cache && (static_cast<int>(k) == rd.cached ||
                      std::find(rd.candidates.begin(), rd.candidates.end(), k) != rd.candidates.end()))
          s += "v[i]";
        else
          s += load;
        s += ";\n";
        break;
      }
      case leaf_kind::lazy: put(s, {indent, "const long long x", n, " = ", off, ";\n"}); break;
      case leaf_kind::position: put(s, {indent, "const long long x", n, " = p.a", n, " + ", off, ";\n"}); break;
    }
  }
}

/// The row offsets of leaves `which` ("const I o3 = kc[0] * p.kst3[0];"), where a pass needs them:
/// a pass that takes the row from registers leaves them unused.
inline void put_row_offsets(std::string& s, const std::vector<std::size_t>& which, std::size_t kr, std::string_view indent) {
  for (std::size_t k : which) {
    const std::string n = std::to_string(k);
    put(s, {indent, "const I o", n, " = "});
    for (std::size_t j = 0; j < kr; ++j) {
      const std::string J = std::to_string(j);
      put(s, {j ? " + " : "", "kc[", J, "] * p.kst", n, "[", J, "]"});
    }
    s += ";\n";
  }
}

/// Opens a cached row kernel's loop over a thread's groups of V columns: q, and c0, the group's
/// first column, inside `if (c0 < C)` (two braces to close).
inline void open_row_groups(std::string& s, std::string_view indent) {
  put(s, {"#pragma unroll\n", indent, "for (int q = 0; q < K / V; ++q) {\n", indent, "  const int c0 = V * (lane + G * q);\n", indent,
          "  if (c0 < C) {\n"});
}
/// Opens the loop over a group's columns: w, i (its register in v) and c (its column).
inline void open_group_columns(std::string& s, std::string_view indent) {
  put(s, {"#pragma unroll\n", indent, "for (int w = 0; w < V; ++w) {\n", indent, "  const int i = q * V + w, c = c0 + w;\n"});
}
/// The output text with each `loom::dev::div(A, rJ)` whose divisor is a float32 row value rJ
/// written `loom::dev::div_row(A, dJ, ok)`; J, once each, appended to `used` in order of first use.
inline std::string row_divisions(std::string_view text, const row_desc& rd, std::vector<std::size_t>& used) {
  static constexpr std::string_view call = "loom::dev::div(";
  std::string s(text);
  for (std::size_t at = s.find(call); at != std::string::npos; at = s.find(call, at + 1)) {
    const std::size_t open = at + call.size();
    std::size_t comma = std::string::npos, close = std::string::npos;
    int depth = 0;
    for (std::size_t i = open; i < s.size() && close == std::string::npos; ++i) {
      if (s[i] == '(') ++depth;
      if (s[i] == ')' && depth-- == 0) close = i;
      if (s[i] == ',' && depth == 0) comma = i;
    }
    if (comma == std::string::npos || close == std::string::npos) continue;
    std::string_view divisor = std::string_view(s).substr(comma + 1, close - comma - 1);
    while (!divisor.empty() && divisor.front() == ' ') divisor.remove_prefix(1);
    if (divisor.size() < 2 || divisor[0] != 'r' ||
        !std::all_of(divisor.begin() + 1, divisor.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    const auto j = static_cast<std::size_t>(std::stoul(std::string(divisor.substr(1))));
    if (j >= rd.stages.size() || rd.stages[j].red.out != dtype::float32) continue;
    if (std::find(used.begin(), used.end(), j) == used.end()) used.push_back(j);
    const std::string tail = ", d" + std::to_string(j) + ", ok)";
    s.replace(comma, close + 1 - comma, tail);
    s.replace(at, call.size(), "loom::dev::div_row(");
  }
  return s;
}

/// Loads the cached leaf's row into v (indent: inside `if (live)`): the row read once.
inline void put_row_cache_fill(std::string& s, const row_desc& rd, int V, std::string_view indent) {
  const std::string n = std::to_string(rd.cached), in = std::string(indent) + "    ";
  const std::string_view t = dtype_c_name(rd.desc.leaves[static_cast<std::size_t>(rd.cached)]);
  open_row_groups(s, indent);
  if (V > 1) {
    put(s, {in, "const loom::dev::vec<", t, ", V> u = *reinterpret_cast<const loom::dev::vec<", t, ", V>*>(p.a", n, " + o", n,
            " + c0);\n#pragma unroll\n", in, "for (int w = 0; w < V; ++w) v[q * V + w] = u.v[w];\n"});
  } else {
    put(s, {in, "v[q] = p.a", n, "[o", n, " + (I)c0 * p.cs", n, "];\n"});
  }
  put(s, {indent, "  }\n", indent, "}\n"});
}
}  // namespace detail

/// Prints the row kernel of d for kept rank kr and G threads per row (32 or 256). K > 0: the
/// cached form, which holds K elements per thread of the cached leaf's row in registers (the
/// row's length at most G * K) in groups of V consecutive columns; the launch must fit it
/// (rows.hpp: 16-byte aligned contiguous rows for V > 1). `bound`: the kernel for launches
/// whose repeated reductions all read their first twin's arrays and whose candidates all read
/// the cached one (row_launch::bound); it has no other path. In the cached passes a float sum
/// or mean adds the thread's K operands pairwise in float and folds that one value into its
/// double accumulator (one conversion a thread, not one an element).
LOOM_NOINLINE inline kernel_text print_row_kernel(const row_desc& d, std::size_t kr, int G, int K = 0, int V = 1,
                                                  bool bound = false) {
  using detail::put;
  const kernel_desc& k = d.desc;
  const std::size_t n = k.leaves.size(), ns = d.stages.size();
  const std::string KR = std::to_string(kr);
  const bool cache = K > 0 && d.cached >= 0;
  if (!cache) K = 0, V = 1;
  const std::string_view dst_t = dtype_c_name(k.dst);
  const bool vstore = cache && V > 1 && static_cast<std::size_t>(V) * dtype_size(k.dst) <= 16;
  std::string s;
  s.reserve(8000);
  put(s, {"// loom row kernel: ", std::to_string(ns), " reduction(s) along each row, then the row; kept rank ", KR, ", ",
          G == 32 ? "a warp" : "a block", " per row"});
  if (cache)
    put(s, {"; the row of x", std::to_string(d.cached), " held in registers, ", std::to_string(K), " per thread in groups of ",
            std::to_string(V)});
  if (bound) s += "; bound to its arrays (repeated reductions and the cache's candidates not tested)";
  put(s, {"\nnamespace loom_gen_@ {\nstruct args {\n  ", dst_t, "* out;\n"});
  for (std::size_t i = 0; i < n; ++i) {
    const std::string x = std::to_string(i);
    if (k.kind(i) == leaf_kind::position)
      put(s, {"  long long a", x, ";\n"});
    else
      put(s, {"  const ", dtype_c_name(k.leaves[i]), "* a", x, ";\n"});
  }
  put(s, {"  long long R, C;\n  long long kext[", KR, "];\n  long long okst[", KR, "];\n  long long ocs;\n"});
  for (std::size_t i = 0; i < n; ++i) {
    const std::string x = std::to_string(i);
    put(s, {"  long long kst", x, "[", KR, "];\n  long long cs", x, ";\n"});
  }
  for (std::size_t j = 0; j < ns; ++j) put(s, {"  long long same", std::to_string(j), ";\n"});
  s += "  unsigned long long hits;\n  long long ovec;\n";
  for (std::size_t size : {8u, 4u, 1u})
    for (std::size_t i = 0; i < k.scalars.size(); ++i)
      if (dtype_size(k.scalars[i]) == size) put(s, {"  ", dtype_c_name(k.scalars[i]), " s", std::to_string(i), ";\n"});
  put(s, {"};\nstatic_assert(sizeof(args) == ", std::to_string(row_args_size(d, kr)),
          ", \"loom: the argument block of this kernel differs from the host's\");\n"});
  for (std::size_t j = 0; j < ns; ++j) {
    put(s, {"namespace st", std::to_string(j), " {\n"});
    detail::put_reducer(s, d.stages[j].red);
    // The group's combine: a butterfly over the warp's lanes (every lane ends with the same
    // bits: each step combines the same two values in either order).
    // Only argmax / argmin carry an index: the others' i stays -1 and is not shuffled.
    const std::string_view v = d.stages[j].red.acc_c_name();
    const bool small = v == "bool";
    put(s, {"__device__ __forceinline__ void warp_combine(acc_t& a) {\n#pragma unroll\n"
            "  for (int h = ", std::to_string(std::min(G, 32) / 2), "; h > 0; h >>= 1) {\n    acc_t b;\n    b.v = ",
            small ? "(bool)__shfl_xor_sync(0xffffffffu, (int)a.v, h)" : "__shfl_xor_sync(0xffffffffu, a.v, h)",
            d.stages[j].red.is_arg() ? ";\n    b.i = __shfl_xor_sync(0xffffffffu, a.i, h);" : ";\n    b.i = a.i;",
            "\n    combine(a, b);\n  }\n}\n}  // namespace st", std::to_string(j), "\n"});
  }
  s += "}  // namespace loom_gen_@\n";
  // Which passes take the row from registers: from the cached pass on, those reading a candidate.
  const auto candidate_mask = [&](const std::vector<std::size_t>& reads) {
    std::uint64_t m = 0;
    for (std::size_t c : d.candidates)
      if (std::find(reads.begin(), reads.end(), c) != reads.end()) m |= std::uint64_t(1) << c;
    return m;
  };
  const auto cached_pass = [&](std::size_t pass, const std::vector<std::size_t>& reads) {
    return cache && pass >= d.cached_pass && (pass == d.cached_pass || candidate_mask(reads) != 0);
  };
  // A bound kernel with the row cache keeps a reduction's operand values e<j>[K] where the
  // output computes the same (softmax's exp(x - max) in the sum and in the quotient): texts
  // compared with the candidates named as the cached leaf and repeated reductions as their first
  // twin, which the binding makes the same values. (The compiler does not find it by itself:
  // neither pass's `c0 < C` branch dominates the other's.) Up to 16 values a thread.
  std::vector<char> keep(ns, 0);
  bool kept_any = false;  // some keep[j] is set
  std::string out_text = k.element;
  std::vector<std::size_t> out_reads = d.out_reads;
  if (bound && cache && K <= 16 && cached_pass(ns, d.out_reads)) {
    const auto L = static_cast<std::size_t>(d.cached);
    const auto root = [&](std::size_t j) {
      while (!d.stages[j].twins.empty()) j = d.stages[j].twins.front();
      return j;
    };
    const auto canonical = [&](std::string_view text) {
      return detail::renumber_names(text, [&](char kind, std::size_t n) {
        if (kind == 'x' && std::find(d.candidates.begin(), d.candidates.end(), n) != d.candidates.end()) return L;
        return kind == 'r' && n < ns ? root(n) : n;
      });
    };
    std::string co = canonical(k.element);
    for (std::size_t j = ns; j-- > 0;) {
      const row_stage& st = d.stages[j];
      if (!st.twins.empty() || !cached_pass(j, st.reads) || st.element.find('(') == std::string::npos) continue;
      const std::string ce = canonical(st.element), name = "e" + std::to_string(j) + "[i]";
      for (std::size_t at = co.find(ce); at != std::string::npos;) {
        if (at > 0 && (co[at - 1] == ':' || detail::ident_char(co[at - 1]))) {  // inside a longer name
          at = co.find(ce, at + 1);
          continue;
        }
        co.replace(at, ce.size(), name);
        keep[j] = 1;
        kept_any = true;
        at = co.find(ce, at + name.size());
      }
    }
    if (kept_any) {
      out_text = std::move(co);
      if (std::find(out_reads.begin(), out_reads.end(), L) == out_reads.end()) out_reads.push_back(L);
    }
  }
  // The cached kernels: the plain loops (where a candidate misses) one element at a time (put_pass
  // below), so that they do not raise the kernel's registers beside the cache; up to 16 cached
  // elements a thread, at most 48 registers (5 blocks of 256 threads per multiprocessor, against
  // 4 at the 60-64 that ptxas chose for softmax and layer norm). Except where more than 8 values
  // a thread are kept as well: at 16 (softmax over 4096 columns) ptxas spilled 40 bytes under
  // 48 registers and took 64 without the bound; on the H200 (2026-11-28) the kept exp at 64
  // registers ran 0.1511 ms against 0.1540 recomputing it at 48, and 0.1576 with the spill.
  const bool kept_wide = K > 8 && kept_any;
  const std::string min_blocks = cache && K <= 16 && !kept_wide ? ", 5" : "";
  // The cached output's divisions by a float row value (softmax's quotient): one reciprocal a
  // row and div_row() per element (preamble.hpp), the same correctly rounded quotients as div();
  // a group where div_row() says `ok` is false divides again with div(). On the H200 the
  // softmax kernel above ran 0.1461 ms with it against 0.1511 without.
  std::vector<std::size_t> divisors;
  const std::string fast_out = cache && vstore && cached_pass(ns, out_reads) ? detail::row_divisions(out_text, d, divisors) : out_text;
  put(s, {"extern \"C\" __global__ void __launch_bounds__(", std::to_string(row_block_threads), min_blocks,
          ") loom_rw_@(const LOOM_GRID_CONSTANT loom_gen_@::args p) {\n  using namespace loom_gen_@;\n  typedef long long I;\n"
          "  constexpr int G = ", std::to_string(G), ", RPB = ", std::to_string(row_block_threads), " / G, KR = ", KR});
  if (cache) put(s, {", K = ", std::to_string(K), ", V = ", std::to_string(V)});
  put(s, {";\n  __shared__ unsigned long long sh[2 * (", std::to_string(row_block_threads),
          " / 32)];  // the warps' accumulators (16 bytes each)\n"
          "  const int lane = (int)threadIdx.x % G, grp = (int)threadIdx.x / G;\n"});
  if (cache)
    put(s, {"  const int C = (int)p.C;  // at most G * K\n  ", dtype_c_name(k.leaves[static_cast<std::size_t>(d.cached)]),
            " v[K];  // the cached leaf's elements of this thread: columns V * (lane + G * q) + w\n"});
  s += "  for (I base = (I)blockIdx.x * RPB; base < p.R; base += (I)gridDim.x * RPB) {  // the same trips for the whole block\n"
       "    const I row = base + grp;\n    const bool live = row < p.R;\n"
       "    I od = 0, kc[KR] = {};  // the row's kept coordinates; each pass computes the offsets it reads\n"
       "    if (live) {\n      I a = row;\n#pragma unroll\n      for (int j = KR - 1; j >= 0; --j) {\n        kc[j] = a % p.kext[j];\n"
       "        a /= p.kext[j];\n        od += kc[j] * p.okst[j];\n      }\n    }\n";
  // One pass over the row (inside `if (live)`, at `in`): the statement `body` once per column c,
  // after the declarations of the leaves it reads. A pass from the cached one on takes the row
  // from v where every candidate it reads hits (one uniform test of their mask, none in the bound
  // kernel; filling v first in the cached pass), else reads memory as the plain kernel does;
  // `vector_out`: the output pass's cached form gathers V results and stores them as one group
  // where p.ovec allows. `pair`: the pass of a sum's stage whose cached form keeps the thread's
  // operands in t[K] of its operand type, adds them pairwise and folds the total.
  const auto put_pass = [&](std::size_t pass, const std::vector<std::size_t>& reads, std::string_view body, bool vector_out,
                            std::string_view in, bool pair = false) {
    const std::uint64_t m = candidate_mask(reads);
    detail::put_row_offsets(s, reads, kr, in);
    const bool cached = cached_pass(pass, reads);
    const bool tested = m != 0 && !bound;
    const bool plain = !cached || tested;
    const std::string deeper = std::string(in) + "  ", group = deeper + "    ", inner = group + "  ";
    if (cached) {
      if (pass == d.cached_pass) detail::put_row_cache_fill(s, d, V, in);
      if (!tested)
        put(s, {in, "{\n"});
      else
        put(s, {in, "if ((p.hits & ", std::to_string(m), "ull) == ", std::to_string(m), "ull) {  // the row from registers\n"});
      if (pair)
        put(s, {deeper, dtype_c_name(d.stages[pass].red.op.value), " t[K];  // this thread's operands, added pairwise\n#pragma unroll\n",
                deeper, "for (int i = 0; i < K; ++i) t[i] = 0;\n"});
      detail::open_row_groups(s, deeper);
      if (vector_out) put(s, {group, "loom::dev::vec<", dst_t, ", V> y;\n"});
      if (vector_out && !divisors.empty()) {
        put(s, {group, "bool ok = "});
        for (std::size_t j = 0; j < divisors.size(); ++j) put(s, {j ? " && d" : "d", std::to_string(divisors[j]), ".fast"});
        s += ";\n";
      }
      detail::open_group_columns(s, group);
      detail::put_row_loads(s, d, reads, inner, true);
      const std::string kept = pass < ns && keep[pass] ? "e" + std::to_string(pass) + "[i] = " : std::string();
      if (pair) {
        put(s, {inner, "t[i] = ", kept, d.stages[pass].element, ";\n", group, "}\n"});
      } else if (!kept.empty()) {
        put(s, {inner, "st", std::to_string(pass), "::fold(acc, ", kept, d.stages[pass].element, ", c);\n", group, "}\n"});
      } else if (vector_out) {
        put(s, {inner, "y.v[w] = loom::dev::cvt<", dst_t, ">(", fast_out, ");\n", group, "}\n"});
        if (!divisors.empty()) {
          put(s, {group, "if (!ok) {  // a quotient out of div_row's ranges: the group divides again\n"});
          detail::open_group_columns(s, inner);
          detail::put_row_loads(s, d, reads, inner + "  ", true);
          put(s, {inner, "  y.v[w] = loom::dev::cvt<", dst_t, ">(", out_text, ");\n", inner, "}\n", group, "}\n"});
        }
        put(s, {group, "if (p.ovec) {\n", inner,
                "*reinterpret_cast<loom::dev::vec<", dst_t, ", V>*>(p.out + od + c0) = y;\n", group, "} else {\n#pragma unroll\n",
                inner, "for (int w = 0; w < V; ++w) p.out[od + (I)(c0 + w) * p.ocs] = y.v[w];\n", group, "}\n"});
      } else {
        put(s, {inner, body, "\n", group, "}\n"});
      }
      put(s, {deeper, "  }\n", deeper, "}\n"});
      if (pair) {
        const std::string J = std::to_string(pass);
        for (int h = K / 2; h > 0; h /= 2)  // (a loop over h leaves t in local memory)
          put(s, {"#pragma unroll\n", deeper, "for (int i = 0; i < ", std::to_string(h), "; ++i) t[i] += t[i + ", std::to_string(h),
                  "];\n"});
        put(s, {deeper, "st", J, "::fold(acc, t[0], 0);\n"});
      }
      put(s, {in, "}", plain ? " else {\n" : "\n"});
    }
    if (plain) {
      const std::string_view at = cached ? deeper : in;
      put(s, {at, cached ? "#pragma unroll 1\n" : "#pragma unroll 4\n", at, "for (I c = lane; c < p.C; c += G) {\n"});
      detail::put_row_loads(s, d, reads, std::string(at) + "  ");
      put(s, {at, "  ", body, "\n", at, "}\n"});
      if (cached) put(s, {in, "}\n"});
    }
  };
  for (std::size_t j = 0; j < ns; ++j) {
    const row_stage& st = d.stages[j];
    const std::string J = std::to_string(j);
    if (bound && !st.twins.empty()) {
      const std::string T = std::to_string(st.twins.front());
      put(s, {"    const ", dtype_c_name(st.red.out), " r", J, " = r", T, ";  // reduction ", J, " repeats ", T, "\n"});
      continue;
    }
    if (keep[j]) put(s, {"    ", dtype_c_name(st.red.op.value), " e", J, "[K];  // its operand, which the output repeats\n"});
    put(s, {"    ", dtype_c_name(st.red.out), " r", J, ";\n    "});
    for (std::size_t t : st.twins) put(s, {"if (p.same", J, " == ", std::to_string(t), ") r", J, " = r", std::to_string(t), ";\n    else "});
    put(s, {"{  // reduction ", J, ": ", st.red.reducer, "\n      st", J, "::acc_t acc = st", J, "::identity();\n      if (live) {\n"});
    const bool pair = (st.red.reducer == "sum" || st.red.reducer == "mean") && st.red.op.value == dtype::float32;
    put_pass(j, st.reads, "st" + J + "::fold(acc, " + st.element + ", c);", false, "        ", pair);
    put(s, {"      }\n      st", J, "::warp_combine(acc);\n"});
    if (G > 32) {
      put(s, {"      st", J, "::acc_t* w = reinterpret_cast<st", J, "::acc_t*>(sh);\n"
              "      if (lane % 32 == 0) w[lane / 32] = acc;\n      __syncthreads();\n      acc = w[0];\n"
              "      for (int q = 1; q < G / 32; ++q) st", J, "::combine(acc, w[q]);\n      __syncthreads();\n"});
    }
    put(s, {"      r", J, " = st", J, "::finish(acc, p.C);\n    }\n"});
  }
  for (std::size_t j : divisors)
    put(s, {"    const loom::dev::row_divisor d", std::to_string(j), " = loom::dev::row_divisor_of(r", std::to_string(j), ");\n"});
  s += "    if (live) {  // the output\n";
  put_pass(ns, out_reads, "p.out[od + (I)c * p.ocs] = loom::dev::cvt<" + std::string(dst_t) + ">(" + out_text + ");", vstore,
           "      ");
  s += "    }\n  }\n}\n";
  return detail::hashed_kernel(s, 0x6c6f6f6d2d7277ull, "loom_rw_");  // "loom-rw"
}

/// Writes a row kernel's argument block. `cs` holds n + 1 cursors (destination first) over the
/// iteration space [kept axes..., the row's axes collapsed to one]; `same[j]`: the earlier stage
/// stage j reuses, or -1.
inline void pack_row_args(arg_block& out, const row_desc& d, const row_launch& rl, const array_cursor* cs,
                          const scalar_value* sv, const long long* same) {
  const std::size_t need = row_args_size(d, rl.kr);
  if (need > arg_block::capacity)
    throw cuda_error("loom: the expression has too many operands for one row kernel (" + std::to_string(need) +
                     " bytes of arguments, the limit is " + std::to_string(arg_block::capacity) + ")");
  const std::size_t n = d.desc.leaves.size();
  out.size = 0;
  for (std::size_t i = 0; i <= n; ++i) {
    const std::uint64_t a = cs[i].base;
    out.put(&a, 8);
  }
  out.put_index(rl.R);
  out.put_index(rl.C);
  for (std::size_t j = 0; j < rl.kr; ++j) out.put_index(rl.kext[j]);
  for (std::size_t i = 0; i <= n; ++i) {
    for (std::size_t j = 0; j < rl.kr; ++j) out.put_index(cs[i].stride[j]);
    out.put_index(cs[i].stride[rl.kr]);
  }
  for (std::size_t j = 0; j < d.stages.size(); ++j) out.put_index(same[j]);
  out.put(&rl.hits, 8);
  out.put_index(rl.ovec ? 1 : 0);
  for (std::size_t size : {8u, 4u, 1u})
    for (std::size_t i = 0; i < d.desc.scalars.size(); ++i)
      if (dtype_size(d.desc.scalars[i]) == size) out.put(sv[i].bytes, size);
  out.size = (out.size + 7) & ~std::size_t(7);
}

}  // namespace loom::cuda::codegen
