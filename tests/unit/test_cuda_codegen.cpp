// The CUDA backend's code generation without a GPU: the device helpers against the scalar ops
// they mirror, layout planning, the argument block, kernel sources (stable, one per type and
// layout), NVRTC compiles of every op x dtype x layout class for sm_80 and sm_90, cuda::compile,
// and what device tensors do where there is no device.
//
// The op x dtype x layout matrix is generated at run time through the same non-template printer
// the expression types use (emit_map, print_kernel), and checked equal to what real expression
// types print, so the test compiles quickly (C++) and every kernel it prints is compiled once
// per architecture by NVRTC, batched into a few programs through the module cache (so a rerun
// with an unchanged source is a disk-cache hit).
#include <loom/cuda.hpp>
#include <loom/plan/plan.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

#include "support.hpp"

using namespace loom;
namespace cg = loom::cuda::codegen;
namespace dev = loom::cuda::dev;
namespace rt = loom::cuda::runtime;

#define LOOM_REQUIRE_NVRTC()                                                          \
  do {                                                                                \
    if (!cuda::nvrtc_available()) {                                                   \
      WARN("NVRTC is not available: skipped (" << cuda::nvrtc_unavailable_reason() << ")"); \
      return;                                                                         \
    }                                                                                 \
  } while (0)

namespace {

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The type the device helpers use for T (int64_t is `long` on the host, `long long` in kernels).
template <class T>
using device_t = std::conditional_t<std::is_same_v<T, std::int64_t>, long long, T>;

template <class T>
std::vector<T> edge_values() {
  if constexpr (std::is_floating_point_v<T>) {
    const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
    return {T(0),   T(-0.0), T(1),    T(-1),   T(0.5),  T(-0.5),  T(1.5),    T(2.5),     T(-2.5),
            T(3.7), T(-3.7), T(1e-3), T(1e-30), T(30), T(-30),   T(88.5),   T(-100),    T(1e30),
            T(7),   T(-7),   inf,     -inf,    nan,     std::numeric_limits<T>::denorm_min(), T(2147483520.0),
            T(3e9), T(-3e9), T(1e19), T(-1e19)};
  } else if constexpr (std::is_same_v<T, bool>) {
    return {false, true};
  } else {
    return {T(0), T(1), T(-1), T(2), T(-2), T(3), T(-3), T(7), T(-7), T(31), T(100), T(-100),
            std::numeric_limits<T>::min(), std::numeric_limits<T>::max(), T(std::numeric_limits<T>::min() + 1)};
  }
}

/// Equal values, with NaN equal to NaN and the sign of zero significant.
template <class A, class B>
bool same_value(A a, B b) {
  static_assert(sizeof(A) == sizeof(B));
  if constexpr (std::is_floating_point_v<A>) {
    if (std::isnan(a)) return std::isnan(b);
    return a == b && std::signbit(a) == std::signbit(b);
  } else {
    return static_cast<long long>(a) == static_cast<long long>(b);
  }
}

template <class T, class Dev, class Ref>
void check_unary_op(const char* name, Dev dev_fn, Ref ref_fn) {
  std::size_t bad = 0;
  std::string first;
  for (T a : edge_values<T>()) {
    const auto got = dev_fn(static_cast<device_t<T>>(a));
    const auto want = ref_fn(a);
    if (!same_value(got, want)) {
      if (bad++ == 0) first = std::to_string(+a) + " -> " + std::to_string(+got) + " (want " + std::to_string(+want) + ")";
    }
  }
  INFO(name << " on " << dtype_name(dtype_of<T>) << ": " << bad << " differ; first " << first);
  CHECK(bad == 0);
}

template <class T, class Dev, class Ref>
void check_binary_op(const char* name, Dev dev_fn, Ref ref_fn) {
  std::size_t bad = 0;
  std::string first;
  const auto v = edge_values<T>();
  for (T a : v)
    for (T b : v) {
      const auto got = dev_fn(static_cast<device_t<T>>(a), static_cast<device_t<T>>(b));
      const auto want = ref_fn(a, b);
      if (!same_value(got, want)) {
        if (bad++ == 0)
          first = "(" + std::to_string(+a) + ", " + std::to_string(+b) + ") -> " + std::to_string(+got) + " (want " +
                  std::to_string(+want) + ")";
      }
    }
  INFO(name << " on " << dtype_name(dtype_of<T>) << ": " << bad << " differ; first " << first);
  CHECK(bad == 0);
}

std::string body_of(const std::string& source) {
  REQUIRE(source.size() > cg::preamble().size());
  REQUIRE(source.compare(0, cg::preamble().size(), cg::preamble()) == 0);
  return source.substr(cg::preamble().size());
}

// ---------------------------------------------------------------------------------------------
// The op table, at run time, from the tags of expr/ops.hpp
// ---------------------------------------------------------------------------------------------

struct op_row {
  std::string name;
  int arity;
  type_rule rule;
  dtype target;  // cast<T>'s T
};

template <class Op>
constexpr dtype target_of() {
  if constexpr (requires { typename Op::target; })
    return dtype_of<typename Op::target>;
  else
    return dtype::float32;
}

/// Every op of expr/ops.hpp (cast once per target type).
using all_ops =
    type_list<ops::add, ops::sub, ops::mul, ops::div, ops::maximum, ops::minimum, ops::pow, ops::eq, ops::ne, ops::lt,
              ops::le, ops::gt, ops::ge, ops::logical_and, ops::logical_or, ops::logical_not, ops::neg, ops::abs,
              ops::floor, ops::ceil, ops::round, ops::relu, ops::exp, ops::log, ops::log1p, ops::expm1, ops::sqrt,
              ops::rsqrt, ops::sin, ops::cos, ops::tanh, ops::sigmoid, ops::erf, ops::gelu, ops::gelu_exact,
              ops::where, ops::clamp, ops::cast<bool>, ops::cast<std::int32_t>, ops::cast<std::int64_t>,
              ops::cast<float>, ops::cast<double>>;

template <class... Ops>
std::vector<op_row> rows_of(type_list<Ops...>) {
  return {op_row{std::string(Ops::name), Ops::arity, Ops::rule, target_of<Ops>()}...};
}

const std::vector<dtype> all_dtypes = {dtype::bool_, dtype::int32, dtype::int64, dtype::float32, dtype::float64};
const std::vector<dtype> numeric_dtypes = {dtype::int32, dtype::int64, dtype::float32, dtype::float64};

/// The operand dtypes an op accepts in loom (as the CPU's type rules allow them).
std::vector<dtype> operand_dtypes(const op_row& op) {
  switch (op.rule) {
    case type_rule::arithmetic:
    case type_rule::same: return numeric_dtypes;
    case type_rule::logical: return {dtype::bool_, dtype::int64, dtype::float32};
    default: return all_dtypes;
  }
}

dtype compute_of(const op_row& op, dtype t) {
  switch (op.rule) {
    case type_rule::floating: return float_of(t);
    case type_rule::logical: return dtype::bool_;
    case type_rule::convert: return op.target;
    default: return t;
  }
}

/// The description of op applied to leaves of dtype t (where's condition a bool leaf); with
/// `scalar_last`, the last operand of a multi-operand op is a scalar parameter instead.
cg::kernel_desc describe_op(const op_row& op, dtype t, bool scalar_last, dtype dst = dtype::bool_, bool dst_given = false) {
  const dtype compute = compute_of(op, t);
  cg::emit_state st;
  std::vector<cg::emitted> a;
  for (int i = 0; i < op.arity; ++i) {
    if (op.rule == type_rule::select && i == 0)
      a.push_back(st.leaf(dtype::bool_));
    else if (scalar_last && op.arity > 1 && i == op.arity - 1)
      a.push_back(st.scalar(cg::operand_dtype(op.rule, compute, static_cast<std::size_t>(i))));
    else
      a.push_back(st.leaf(t));
  }
  cg::emitted e = cg::emit_map(op.name, op.rule, compute, std::move(a));
  cg::kernel_desc d;
  d.dst = dst_given ? dst : e.type;
  d.value = e.type;
  d.leaves = st.leaves();
  d.scalars = st.scalars();
  d.element = e.text;
  return d;
}

/// Kernels to compile: name -> body (the same name is the same body).
using kernel_set = std::map<std::string, std::string>;

void add_kernel(kernel_set& set, const cg::kernel_text& t) {
  auto [it, inserted] = set.emplace(t.name, t.body);
  if (!inserted) CHECK(it->second == t.body);  // one name, one body
}

/// Compiles every kernel of `set` for `arch` with NVRTC, a few dozen per program (one preamble
/// each), through the process-wide module cache. Returns the programs' total image size.
std::size_t compile_all(const kernel_set& set, const std::string& arch) {
  std::size_t total = 0;
  auto it = set.begin();
  while (it != set.end()) {
    std::string source = cg::preamble();
    std::vector<std::string> names;
    for (std::size_t n = 0; n < 64 && it != set.end(); ++n, ++it) {
      source += it->second;
      names.push_back(it->first);
    }
    cuda::compile_options o;
    o.arch = arch;
    o.program_name = "loom_codegen_test.cu";
    const auto p = rt::module_cache::process().program(source, names, o);
    CHECK(p->arch == arch);
    CHECK(p->image.size() > 1000);
    for (const std::string& n : names) CHECK(p->lowered_name(n) == n);  // extern "C", registered, found
    total += p->image.size();
  }
  return total;
}

/// Compiles every kernel of `set` for sm_80 and sm_90, the two architectures in two threads
/// (NVRTC compiles distinct programs concurrently); each gives a non-empty image.
void compile_for_sm80_and_sm90(const kernel_set& set) {
  std::size_t bytes80 = 0;
  std::exception_ptr failure;
  std::thread t80([&] {
    try {
      bytes80 = compile_all(set, "sm_80");
    } catch (...) {
      failure = std::current_exception();
    }
  });
  const std::size_t bytes90 = compile_all(set, "sm_90");
  t80.join();
  if (failure) std::rethrow_exception(failure);
  CHECK(bytes80 > 0);
  CHECK(bytes90 > 0);
}


/// Fake addresses for planning layouts without a device (aligned to 256 bytes unless offset).
template <class T>
T* fake_address(std::uintptr_t slot, std::size_t misalign_elements = 0) {
  return reinterpret_cast<T*>((slot << 20) + misalign_elements * sizeof(T));
}

/// A node kind the CUDA backend has no emitter for.
struct opaque_node {
  static constexpr bool is_loom_node = true;
  using value_type = float;
  using shape_type = loom::shape<dyn>;
  static constexpr memory_space space = memory_space::device;
  std::size_t n = 4;
  loom::shape<dyn> shape() const { return loom::shape<dyn>{n}; }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// The device helpers are the ops of expr/ops.hpp
// ---------------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("cuda codegen: device arithmetic and comparisons are the scalar ops", "[cuda][codegen][preamble]",
                   float, double, std::int32_t, std::int64_t) {
  using T = TestType;
  check_binary_op<T>("add", [](auto a, auto b) { return dev::add(a, b); }, [](T a, T b) { return ops::add::apply(a, b); });
  check_binary_op<T>("sub", [](auto a, auto b) { return dev::sub(a, b); }, [](T a, T b) { return ops::sub::apply(a, b); });
  check_binary_op<T>("mul", [](auto a, auto b) { return dev::mul(a, b); }, [](T a, T b) { return ops::mul::apply(a, b); });
  check_binary_op<T>("div", [](auto a, auto b) { return dev::div(a, b); }, [](T a, T b) { return ops::div::apply(a, b); });
  check_binary_op<T>("maximum", [](auto a, auto b) { return dev::maximum(a, b); },
                     [](T a, T b) { return ops::maximum::apply(a, b); });
  check_binary_op<T>("minimum", [](auto a, auto b) { return dev::minimum(a, b); },
                     [](T a, T b) { return ops::minimum::apply(a, b); });
  check_binary_op<T>("pow", [](auto a, auto b) { return dev::pow(a, b); }, [](T a, T b) { return ops::pow::apply(a, b); });
  check_binary_op<T>("eq", [](auto a, auto b) { return dev::eq(a, b); }, [](T a, T b) { return ops::eq::apply(a, b); });
  check_binary_op<T>("ne", [](auto a, auto b) { return dev::ne(a, b); }, [](T a, T b) { return ops::ne::apply(a, b); });
  check_binary_op<T>("lt", [](auto a, auto b) { return dev::lt(a, b); }, [](T a, T b) { return ops::lt::apply(a, b); });
  check_binary_op<T>("le", [](auto a, auto b) { return dev::le(a, b); }, [](T a, T b) { return ops::le::apply(a, b); });
  check_binary_op<T>("gt", [](auto a, auto b) { return dev::gt(a, b); }, [](T a, T b) { return ops::gt::apply(a, b); });
  check_binary_op<T>("ge", [](auto a, auto b) { return dev::ge(a, b); }, [](T a, T b) { return ops::ge::apply(a, b); });
  check_binary_op<T>("clamp(a, -b, b)", [](auto a, auto b) { return dev::clamp(a, decltype(b)(-b), b); },
                     [](T a, T b) { return ops::clamp::apply(a, T(-b), b); });
  check_binary_op<T>("clamp(a, b, 1)", [](auto a, auto b) { return dev::clamp(a, b, decltype(b)(1)); },
                     [](T a, T b) { return ops::clamp::apply(a, b, T(1)); });
  check_binary_op<T>("where", [](auto a, auto b) { return dev::where(a > b, a, b); },
                     [](T a, T b) { return ops::where::apply(a > b, a, b); });
  check_unary_op<T>("neg", [](auto a) { return dev::neg(a); }, [](T a) { return ops::neg::apply(a); });
  check_unary_op<T>("abs", [](auto a) { return dev::abs(a); }, [](T a) { return ops::abs::apply(a); });
  check_unary_op<T>("floor", [](auto a) { return dev::floor(a); }, [](T a) { return ops::floor::apply(a); });
  check_unary_op<T>("ceil", [](auto a) { return dev::ceil(a); }, [](T a) { return ops::ceil::apply(a); });
  check_unary_op<T>("round", [](auto a) { return dev::round(a); }, [](T a) { return ops::round::apply(a); });
  check_unary_op<T>("relu", [](auto a) { return dev::relu(a); }, [](T a) { return ops::relu::apply(a); });
}

TEST_CASE("cuda codegen: device comparisons and logic on bool", "[cuda][codegen][preamble]") {
  check_binary_op<bool>("eq", [](auto a, auto b) { return dev::eq(a, b); }, [](bool a, bool b) { return ops::eq::apply(a, b); });
  check_binary_op<bool>("lt", [](auto a, auto b) { return dev::lt(a, b); }, [](bool a, bool b) { return ops::lt::apply(a, b); });
  check_binary_op<bool>("ge", [](auto a, auto b) { return dev::ge(a, b); }, [](bool a, bool b) { return ops::ge::apply(a, b); });
  check_binary_op<bool>("and", [](bool a, bool b) { return dev::logical_and(a, b); },
                        [](bool a, bool b) { return ops::logical_and::apply(a, b); });
  check_binary_op<bool>("or", [](bool a, bool b) { return dev::logical_or(a, b); },
                        [](bool a, bool b) { return ops::logical_or::apply(a, b); });
  check_unary_op<bool>("not", [](bool a) { return dev::logical_not(a); }, [](bool a) { return ops::logical_not::apply(a); });
  check_binary_op<bool>("where", [](bool a, bool b) { return dev::where(a, a, b); },
                        [](bool a, bool b) { return ops::where::apply(a, a, b); });
}

TEMPLATE_TEST_CASE("cuda codegen: device math functions are the scalar ops", "[cuda][codegen][preamble]", float, double) {
  using T = TestType;
  check_unary_op<T>("exp", [](auto a) { return dev::exp(a); }, [](T a) { return ops::exp::apply(a); });
  check_unary_op<T>("log", [](auto a) { return dev::log(a); }, [](T a) { return ops::log::apply(a); });
  check_unary_op<T>("log1p", [](auto a) { return dev::log1p(a); }, [](T a) { return ops::log1p::apply(a); });
  check_unary_op<T>("expm1", [](auto a) { return dev::expm1(a); }, [](T a) { return ops::expm1::apply(a); });
  check_unary_op<T>("sqrt", [](auto a) { return dev::sqrt(a); }, [](T a) { return ops::sqrt::apply(a); });
  check_unary_op<T>("rsqrt", [](auto a) { return dev::rsqrt(a); }, [](T a) { return ops::rsqrt::apply(a); });
  check_unary_op<T>("sin", [](auto a) { return dev::sin(a); }, [](T a) { return ops::sin::apply(a); });
  check_unary_op<T>("cos", [](auto a) { return dev::cos(a); }, [](T a) { return ops::cos::apply(a); });
  check_unary_op<T>("tanh", [](auto a) { return dev::tanh(a); }, [](T a) { return ops::tanh::apply(a); });
  check_unary_op<T>("sigmoid", [](auto a) { return dev::sigmoid(a); }, [](T a) { return ops::sigmoid::apply(a); });
  check_unary_op<T>("erf", [](auto a) { return dev::erf(a); }, [](T a) { return ops::erf::apply(a); });
  check_unary_op<T>("gelu", [](auto a) { return dev::gelu(a); }, [](T a) { return ops::gelu::apply(a); });
  check_unary_op<T>("gelu_exact", [](auto a) { return dev::gelu_exact(a); }, [](T a) { return ops::gelu_exact::apply(a); });
}

TEMPLATE_TEST_CASE("cuda codegen: device conversions are detail::convert", "[cuda][codegen][preamble]", bool,
                   std::int32_t, std::int64_t, float, double) {
  using From = TestType;
  for (From x : edge_values<From>()) {
    INFO("from " << dtype_name(dtype_of<From>) << " " << +x);
    const device_t<From> dx = static_cast<device_t<From>>(x);
    CHECK(same_value(dev::cvt<bool>(dx), loom::detail::convert<bool>(x)));
    CHECK(same_value(dev::cvt<int>(dx), loom::detail::convert<std::int32_t>(x)));
    CHECK(same_value(dev::cvt<long long>(dx), loom::detail::convert<std::int64_t>(x)));
    CHECK(same_value(dev::cvt<float>(dx), loom::detail::convert<float>(x)));
    CHECK(same_value(dev::cvt<double>(dx), loom::detail::convert<double>(x)));
  }
  CHECK(dev::cvt<int>(3e9f) == 2147483647);
  CHECK(dev::cvt<int>(-3e9) == std::numeric_limits<int>::min());
  CHECK(dev::cvt<long long>(std::numeric_limits<double>::quiet_NaN()) == 0);
  CHECK(dev::cvt<int>(2147483520.f) == 2147483520);
}

TEST_CASE("cuda codegen: div_row is the correctly rounded quotient wherever it says ok", "[cuda][codegen][preamble]") {
  // Divisors over [2^-24, 2^25] and dividends over every binade, zeros, infinities, NaN and
  // subnormals, with mantissas at the ends of the range; where ok stays true the bits are x / s.
  std::mt19937_64 g(20261128);
  const auto from_bits = [](std::uint32_t b) { return std::bit_cast<float>(b); };
  const auto mantissa = [&] {
    const std::uint32_t m = static_cast<std::uint32_t>(g()) & 0x7fffffu;
    switch (g() % 4) {
      case 0: return 0x7fffffu - m % 8;
      case 1: return m % 8;
      default: return m;
    }
  };
  std::size_t fast = 0, slow = 0;
  for (int n = 0; n < 2000000; ++n) {
    const float s = from_bits((std::uint32_t(127 - 24 + g() % 50) << 23 | mantissa()) | std::uint32_t(g() % 2) << 31);
    std::uint32_t xb = std::uint32_t(g() % 256) << 23 | mantissa();
    if (g() % 64 == 0) xb = g() % 2 ? 0u : 0x7f800000u;
    const float x = from_bits(xb | std::uint32_t(g() % 2) << 31);
    const dev::row_divisor d = dev::row_divisor_of(s);
    bool ok = d.fast;
    const float q = dev::div_row(x, d, ok);
    if (!ok) {
      ++slow;
      continue;
    }
    ++fast;
    if (std::bit_cast<std::uint32_t>(q) != std::bit_cast<std::uint32_t>(x / s)) {
      FAIL_CHECK("x = " << x << ", s = " << s << ": div_row " << q << ", x / s " << x / s);
      break;
    }
  }
  CHECK(fast > 900000);  // most of the cases take the fast path
  CHECK(slow > 100000);
  CHECK_FALSE(dev::row_divisor_of(0x1p30f).fast);  // a divisor out of range: the kernel starts ok from d.fast
  CHECK_FALSE(dev::row_divisor_of(0.f).fast);
  CHECK_FALSE(dev::row_divisor_of(std::numeric_limits<float>::quiet_NaN()).fast);
  bool ok = true;
  (void)dev::div_row(std::numeric_limits<float>::infinity(), dev::row_divisor_of(3.f), ok);
  CHECK_FALSE(ok);
  ok = true;
  CHECK(std::signbit(dev::div_row(-0.f, dev::row_divisor_of(3.f), ok)));
  CHECK(ok);
}

TEST_CASE("cuda codegen: the preamble is one embedded string", "[cuda][codegen][preamble]") {
  const std::string& p = cg::preamble();
  CHECK(&p == &cg::preamble());
  CHECK(p.find("#include") == std::string::npos);  // nothing is looked up on disk at run time
  CHECK(p.find("namespace loom {") != std::string::npos);
  CHECK(p.find("#define LOOM_DFN __device__ __forceinline__") != std::string::npos);
  // A helper for every op name of the table (cast is cvt).
  for (const op_row& op : rows_of(all_ops{})) {
    if (op.rule == type_rule::convert) continue;
    INFO(op.name);
    CHECK(p.find(" " + op.name + "(") != std::string::npos);
  }
  CHECK(p.find("To cvt(From x)") != std::string::npos);
  CHECK(std::count(p.begin(), p.end(), '{') == std::count(p.begin(), p.end(), '}'));
}

// ---------------------------------------------------------------------------------------------
// Layout planning
// ---------------------------------------------------------------------------------------------

namespace {
cg::array_cursor row_major_cursor(std::uintptr_t base, std::size_t elem, const dims& d) {
  cg::array_cursor c;
  c.base = base;
  c.elem_size = elem;
  index_t s = 1;
  for (std::size_t k = d.rank; k-- > 0;) {
    c.stride[k] = s;
    s *= static_cast<index_t>(d.e[k]);
  }
  return c;
}
dims make_dims(std::initializer_list<std::size_t> e) {
  dims d;
  for (std::size_t x : e) d.e[d.rank++] = x;
  return d;
}
}  // namespace

TEST_CASE("cuda codegen: layout keys have distinct slots", "[cuda][codegen][layout]") {
  std::set<std::size_t> seen;
  for (bool wide : {false, true}) {
    seen.insert(cg::layout_key{cg::layout_class::contiguous, 1, wide}.slot());
    for (std::uint8_t r = 1; r <= max_rank; ++r) {
      seen.insert(cg::layout_key{cg::layout_class::broadcast, r, wide}.slot());
      seen.insert(cg::layout_key{cg::layout_class::strided, r, wide}.slot());
    }
  }
  CHECK(seen.size() == cg::layout_key::slots);
  CHECK(*seen.rbegin() == cg::layout_key::slots - 1);
  CHECK(cg::layout_key{cg::layout_class::broadcast, 2, false}.describe() == "broadcast, rank 2, 32-bit indices");
}

TEST_CASE("cuda codegen: contiguous layouts, alignment and vector accesses", "[cuda][codegen][layout]") {
  const dims d = make_dims({8, 1024});
  cg::array_cursor cs[3] = {row_major_cursor(1 << 20, 4, d), row_major_cursor(2 << 20, 4, d),
                            row_major_cursor(3 << 20, 8, d)};
  auto ls = cg::plan_layout(d, cs, 3, 2);
  CHECK(ls.key == cg::layout_key{cg::layout_class::contiguous, 1, false});
  CHECK(ls.vec);
  CHECK(ls.elements == 8192);
  CHECK(ls.units == 8192);
  CHECK(ls.extent[0] == 8192);
  for (auto& c : cs) CHECK(c.stride[0] == 1);

  // A leaf that starts one float off a 16-byte boundary: no vector accesses.
  cg::array_cursor mis[2] = {row_major_cursor(1 << 20, 4, d), row_major_cursor((2 << 20) + 4, 4, d)};
  CHECK_FALSE(cg::plan_layout(d, mis, 2, 4).vec);
  // An offset folded into the base address counts too.
  cg::array_cursor off[2] = {row_major_cursor(1 << 20, 4, d), row_major_cursor(2 << 20, 4, d)};
  off[1].offset = 4;
  auto lo = cg::plan_layout(d, off, 2, 4);
  CHECK(lo.vec);
  CHECK(off[1].base == (2u << 20) + 16);
  CHECK(off[1].offset == 0);

  // Axes of extent 1 vanish; a single element is contiguous.
  const dims ones = make_dims({1, 1, 1});
  cg::array_cursor one[2] = {row_major_cursor(1 << 20, 4, ones), row_major_cursor(2 << 20, 4, ones)};
  one[1].stride = {};  // a broadcast scalar-like leaf
  CHECK(cg::plan_layout(ones, one, 2, 4).key.cls == cg::layout_class::contiguous);
}

TEST_CASE("cuda codegen: broadcast layouts", "[cuda][codegen][layout]") {
  const dims d = make_dims({8, 1024});
  SECTION("a row vector: inner stride 1, outer 0, vectors of 4") {
    cg::array_cursor cs[2] = {row_major_cursor(1 << 20, 4, d), row_major_cursor(2 << 20, 4, d)};
    cs[1].stride[0] = 0;
    auto ls = cg::plan_layout(d, cs, 2, 4);
    CHECK(ls.key == cg::layout_key{cg::layout_class::broadcast, 2, false});
    CHECK(ls.vec);
    CHECK(ls.extent[0] == 8);
    CHECK(ls.extent[1] == 256);  // in vectors
    CHECK(ls.units == 2048);
    CHECK(cs[1].stride[0] == 0);
    CHECK(cs[1].stride[1] == 4);  // a unit step is one vector
  }
  SECTION("a column: inner stride 0") {
    cg::array_cursor cs[2] = {row_major_cursor(1 << 20, 4, d), row_major_cursor(2 << 20, 4, make_dims({8, 1}))};
    cs[1].stride[1] = 0;
    auto ls = cg::plan_layout(d, cs, 2, 4);
    CHECK(ls.key.cls == cg::layout_class::broadcast);
    CHECK(ls.vec);
    CHECK(cs[1].stride[0] == 1);
    CHECK(cs[1].stride[1] == 0);
  }
  SECTION("an inner extent that is not a multiple of the vector: scalar accesses") {
    const dims odd = make_dims({8, 1023});
    cg::array_cursor cs[2] = {row_major_cursor(1 << 20, 4, odd), row_major_cursor(2 << 20, 4, odd)};
    cs[1].stride[0] = 0;
    auto ls = cg::plan_layout(odd, cs, 2, 4);
    CHECK(ls.key.cls == cg::layout_class::broadcast);
    CHECK_FALSE(ls.vec);
    CHECK(ls.extent[1] == 1023);
    CHECK(ls.units == 8 * 1023);
  }
  SECTION("rank 3: [A, B, C] + [A, 1, C]") {
    const dims d3 = make_dims({4, 5, 8});
    cg::array_cursor cs[2] = {row_major_cursor(1 << 20, 4, d3), row_major_cursor(2 << 20, 4, make_dims({4, 1, 8}))};
    cs[1].stride[1] = 0;
    auto ls = cg::plan_layout(d3, cs, 2, 4);
    CHECK(ls.key == cg::layout_key{cg::layout_class::broadcast, 3, false});
  }
  SECTION("a leaf whose rows are not 16-byte aligned: scalar accesses") {
    const dims d2 = make_dims({8, 12});
    cg::array_cursor cs[2] = {row_major_cursor(1 << 20, 4, d2), row_major_cursor(2 << 20, 4, d2)};
    cs[1].stride[0] = 14;  // a padded pitch of 14 floats
    auto ls = cg::plan_layout(d2, cs, 2, 4);
    CHECK(ls.key.cls == cg::layout_class::broadcast);
    CHECK_FALSE(ls.vec);
  }
}

TEST_CASE("cuda codegen: strided layouts and index widths", "[cuda][codegen][layout]") {
  const dims d = make_dims({64, 32});
  SECTION("a transposed leaf") {
    cg::array_cursor cs[2] = {row_major_cursor(1 << 20, 4, d), row_major_cursor(2 << 20, 4, d)};
    cs[1].stride[0] = 1;
    cs[1].stride[1] = 64;
    auto ls = cg::plan_layout(d, cs, 2, 4);
    CHECK(ls.key == cg::layout_key{cg::layout_class::strided, 2, false});
    CHECK_FALSE(ls.vec);
  }
  SECTION("a stepped destination merges into one strided axis") {
    cg::array_cursor cs[2] = {row_major_cursor(1 << 20, 4, d), row_major_cursor(2 << 20, 4, d)};
    cs[0].stride[0] = 64;
    cs[0].stride[1] = 2;
    cs[1].stride[0] = 32;
    cs[1].stride[1] = 1;
    auto ls = cg::plan_layout(d, cs, 2, 4);
    CHECK(ls.key == cg::layout_key{cg::layout_class::strided, 1, false});
    CHECK(ls.extent[0] == 2048);
    CHECK(cs[0].stride[0] == 2);
  }
  SECTION("64-bit indices from 2^31 - 2^25 elements") {
    const dims big = make_dims({std::size_t(1) << 31});
    cg::array_cursor cs[1] = {row_major_cursor(1 << 20, 1, big)};
    CHECK(cg::plan_layout(big, cs, 1, 16).key.wide);
    const dims below = make_dims({(std::size_t(1) << 31) - (std::size_t(1) << 26)});
    cg::array_cursor cb[1] = {row_major_cursor(1 << 20, 1, below)};
    CHECK_FALSE(cg::plan_layout(below, cb, 1, 16).key.wide);
  }
  SECTION("64-bit indices where a strided leaf spans 2^30 elements") {
    cg::array_cursor cs[2] = {row_major_cursor(1 << 20, 4, d), row_major_cursor(2 << 20, 4, d)};
    cs[1].stride[0] = index_t(1) << 25;  // 64 rows, 2^25 apart: a span of 2^31
    cs[1].stride[1] = 1;
    auto ls = cg::plan_layout(d, cs, 2, 4);
    CHECK(ls.key.cls == cg::layout_class::broadcast);
    CHECK(ls.key.wide);
  }
}

TEST_CASE("cuda codegen: aliasing", "[cuda][codegen][layout]") {
  const dims d = make_dims({16, 16});
  const auto dst = row_major_cursor(1 << 20, 4, d);
  CHECK(cg::alias_safe(dst, dst, d));                                 // x = f(x)
  CHECK(cg::alias_safe(row_major_cursor(2 << 20, 4, d), dst, d));     // disjoint
  auto shifted = dst;
  shifted.offset = 1;
  CHECK_FALSE(cg::alias_safe(shifted, dst, d));                       // reads what others write
  auto transposed = dst;
  std::swap(transposed.stride[0], transposed.stride[1]);
  CHECK_FALSE(cg::alias_safe(transposed, dst, d));
  auto row = dst;
  row.stride[0] = 0;  // a broadcast row of the destination itself
  CHECK_FALSE(cg::alias_safe(row, dst, d));
}

// ---------------------------------------------------------------------------------------------
// The argument block
// ---------------------------------------------------------------------------------------------

TEST_CASE("cuda codegen: the argument block is packed as the kernel declares it", "[cuda][codegen][args]") {
  cg::kernel_desc d;
  d.dst = dtype::float32;
  d.value = dtype::float32;
  d.leaves = {dtype::float32, dtype::bool_};
  d.scalars = {dtype::bool_, dtype::float64, dtype::int32, dtype::float32};
  d.element = "x0";
  const cg::layout_key key{cg::layout_class::broadcast, 2, false};
  // d, a0, a1 (24) units (8) ext[2] (16) st0[2] st1[2] (32) s1 (8) vec (4) s2 s3 (8) s0 (1) -> 101 -> 104
  CHECK(cg::args_size(d, key, false) == 104);
  CHECK(cg::args_size(d, key, true) == 24 + 8 + 4 + 4 + 1 + 7);
  const std::string body = cg::print_kernel(d, key).body;
  CHECK(body.find("static_assert(sizeof(args) == 104") != std::string::npos);

  cg::launch_shape ls;
  ls.key = key;
  ls.vec = true;
  ls.units = 77;
  ls.extent = {3, 5};
  cg::array_cursor cs[3];
  cs[0].base = 0x1000;
  cs[1].base = 0x2000;
  cs[2].base = 0x3000;
  cs[1].stride[0] = 9;
  cs[1].stride[1] = 1;
  cs[2].stride[0] = 0;
  cs[2].stride[1] = 4;
  cg::scalar_value sv[4];
  const bool b = true;
  const double x = 2.5;
  const std::int32_t i = -7;
  const float f = 0.25f;
  std::memcpy(sv[0].bytes, &b, 1);
  std::memcpy(sv[1].bytes, &x, 8);
  std::memcpy(sv[2].bytes, &i, 4);
  std::memcpy(sv[3].bytes, &f, 4);
  cg::arg_block a;
  cg::pack_args(a, d, ls, cs, sv, false);
  CHECK(a.size == 104);
  auto at = [&](std::size_t off, auto v) {
    decltype(v) got;
    std::memcpy(&got, a.bytes + off, sizeof got);
    return got;
  };
  CHECK(at(0, std::uint64_t{}) == 0x1000);
  CHECK(at(8, std::uint64_t{}) == 0x2000);
  CHECK(at(16, std::uint64_t{}) == 0x3000);
  CHECK(at(24, index_t{}) == 77);
  CHECK(at(32, index_t{}) == 3);
  CHECK(at(40, index_t{}) == 5);
  CHECK(at(48, index_t{}) == 9);
  CHECK(at(56, index_t{}) == 1);
  CHECK(at(64, index_t{}) == 0);
  CHECK(at(72, index_t{}) == 4);
  CHECK(at(80, double{}) == 2.5);
  CHECK(at(88, std::int32_t{}) == 1);  // vec
  CHECK(at(92, std::int32_t{}) == -7);
  CHECK(at(96, float{}) == 0.25f);
  CHECK(at(100, bool{}) == true);
}

// ---------------------------------------------------------------------------------------------
// Kernel sources of expression types
// ---------------------------------------------------------------------------------------------

TEST_CASE("cuda codegen: kernel_source is printed once per type and layout", "[cuda][codegen][source]") {
  cuda::tensor<float, shape<dyn, 1024>> a(8), b(8), c(16);
  const std::string& s1 = cuda::kernel_source(exp(a) * 2.f);
  const std::string& s2 = cuda::kernel_source(exp(b) * 3.f);  // same type, other tensor and scalar
  const std::string& s3 = cuda::kernel_source(exp(c) * 2.f);  // same type and layout, other extent
  CHECK(&s1 == &s2);
  CHECK(&s1 == &s3);
  CHECK(s1.find("loom::dev::mul(loom::dev::exp(x0), p.s0)") != std::string::npos);
  CHECK(s1.find("contiguous, rank 1, 32-bit indices") != std::string::npos);
  CHECK(s1.find("#include") == std::string::npos);

  cuda::tensor<float, shape<1024>> row;
  const std::string& bcast = cuda::kernel_source(exp(a) * row);
  CHECK(bcast.find("broadcast, rank 2") != std::string::npos);
  CHECK(&bcast != &s1);

  // The same expression over a strided view is the strided kernel of another type.
  auto v = cuda::view(fake_address<float>(3), shape<dyn, 512>{8}, {1024, 2});
  const std::string& strided = cuda::kernel_source(exp(v) * 2.f);
  CHECK(strided.find("strided, rank 1") != std::string::npos);  // rows of stride 1024 merge: stride 2

  // Baked extents: the literals are in the source; the default source has none.
  const std::string baked = cuda::kernel_source(exp(a) * 2.f, cuda::options{.arch = {}, .bake_extents = true});
  CHECK(baked.find("const I n = (I)8192LL;") != std::string::npos);
  CHECK(baked.find("extents baked in") != std::string::npos);
  CHECK(s1.find("8192") == std::string::npos);
  const std::string baked16 = cuda::kernel_source(exp(c) * 2.f, cuda::options{.arch = {}, .bake_extents = true});
  CHECK(baked16 != baked);
}

TEST_CASE("cuda codegen: leaves that read the very same elements are loaded once", "[cuda][codegen][source]") {
  const auto x = cuda::view(fake_address<float>(1), shape<dyn>{4096});
  const auto y = cuda::view(fake_address<float>(2), shape<dyn>{4096});
  // W2 written out reads x five times: one 16-byte load of x per four elements, not five
  const std::string& w2 = cuda::kernel_source(0.5f * x * (1.f + tanh(0.7978845608f * (x + 0.044715f * x * x * x))));
  CHECK(w2.find("v0 = *reinterpret_cast") != std::string::npos);
  for (const char* other : {"v1 =", "v2 =", "v3 =", "v4 ="}) CHECK(w2.find(other) == std::string::npos);
  CHECK(w2.find("element(p, v0.v[j], v0.v[j], v0.v[j], v0.v[j], v0.v[j])") != std::string::npos);
  CHECK(w2.find("element(p, p.a0[i], p.a0[i], p.a0[i], p.a0[i], p.a0[i])") != std::string::npos);

  const std::string& xy = cuda::kernel_source(x * y + x);
  CHECK(xy.find("element(p, v0.v[j], v1.v[j], v0.v[j])") != std::string::npos);
  const std::string& each = cuda::kernel_source(x * y + y * x + exp(x) + x);  // each array loaded once
  CHECK(each.find("element(p, v0.v[j], v1.v[j], v1.v[j], v0.v[j], v0.v[j], v0.v[j])") != std::string::npos);

  // Not shared: the same memory with another stride, one element on, or as another type; and
  // arrays without memory (a plan made with no device holds null addresses).
  const auto shifted = cuda::view(fake_address<float>(1, 1), shape<dyn>{4096});
  CHECK(cuda::kernel_source(x * shifted).find("element(p, v0.v[j], v1.v[j])") != std::string::npos);
  const auto stepped = cuda::view(fake_address<float>(1), shape<dyn, dyn>{64, 64}, {64, 1});
  const auto transposed = cuda::view(fake_address<float>(1), shape<dyn, dyn>{64, 64}, {1, 64});
  CHECK(cuda::kernel_source(stepped + transposed).find("p.a0[o0], p.a1[o1]") != std::string::npos);
  CHECK(cuda::kernel_source(stepped + stepped).find("v0.v[j], v0.v[j]") != std::string::npos);
  const auto as_int = cuda::view(fake_address<std::int32_t>(1), shape<dyn>{4096});
  CHECK(cuda::kernel_source(x + cast<float>(as_int)).find("v1 = ") != std::string::npos);
  cuda::tensor<float, shape<dyn>> none(0);
  CHECK(cuda::kernel_source(none * none).find("element(p, v0.v[j], v1.v[j])") != std::string::npos);

  // The sharing is part of the kernel (its name hashes the body), and compiles.
  CHECK(xy.find("loom_ew_c_") != std::string::npos);
  if (cuda::nvrtc_available()) {
    CHECK(cuda::compile(0.5f * x * (1.f + tanh(0.7978845608f * (x + 0.044715f * x * x * x)))).cubin_bytes > 0);
    CHECK(cuda::compile(stepped + stepped).cubin_bytes > 0);
  }
}

TEST_CASE("cuda codegen: sin and cos print their element once, in scalar accesses", "[cuda][codegen][source]") {
  const auto x = cuda::view(fake_address<float>(1), shape<dyn>{4096});
  const auto y = cuda::view(fake_address<float>(2), shape<dyn>{4096});
  const std::string& trig = cuda::kernel_source(sin(x) * 1.25f + cos(y) - 0.5f);
  CHECK(trig.find("constexpr int V = 1;") != std::string::npos);
  CHECK(trig.find("constexpr I units = 0;") != std::string::npos);
  std::size_t calls = 0;
  for (std::size_t at = trig.find("element(p"); at != std::string::npos; at = trig.find("element(p", at + 1)) ++calls;
  CHECK(calls == 1);
  const std::string& plain = cuda::kernel_source(exp(x) * 1.25f + y);
  CHECK(plain.find("constexpr int V = 4;") != std::string::npos);
}

TEST_CASE("cuda codegen: expression types print what the run-time printer prints", "[cuda][codegen][source]") {
  // Every op through its real expression type (make_map of device tensors), against the
  // description the matrix below builds at run time for the same op and dtype.
  cuda::tensor<float, shape<dyn, 64>> f(4), g(4), h(4);
  // Two bool tensors: on a device the same tensor twice is one argument of the kernel (its
  // allocations compare equal), which the two-argument description below does not have.
  cuda::tensor<bool, shape<dyn, 64>> c(4), b(4);
  cuda::tensor<std::int64_t, shape<dyn, 64>> i(4), j(4);
  auto rows = rows_of(all_ops{});
  std::size_t checked = 0;
  auto check = [&]<class Op>(Op*, auto&&... leaves) {
    const auto e = loom::detail::make_map<Op>(leaves...);
    const op_row* row = nullptr;
    for (const op_row& r : rows)
      if (r.name == Op::name && r.target == target_of<Op>()) row = &r;
    REQUIRE(row != nullptr);
    const dtype t = dtype_of<value_type_of<decltype((leaves, ...))>>;
    const cg::kernel_desc d = describe_op(*row, t, false);
    INFO(row->name << " on " << dtype_name(t));
    CHECK(body_of(cuda::kernel_source(e)) == cg::print_kernel(d, {cg::layout_class::contiguous, 1, false}).body);
    ++checked;
  };
  [&]<class... Ops>(type_list<Ops...>) {
    (
        [&] {
          using Op = Ops;
          if constexpr (Op::rule == type_rule::select) {
            check((Op*)nullptr, c, f, g);
          } else if constexpr (Op::arity == 3) {
            check((Op*)nullptr, f, g, h);
          } else if constexpr (Op::rule == type_rule::logical && Op::arity == 2) {
            check((Op*)nullptr, c, b);
          } else if constexpr (Op::rule == type_rule::logical) {
            check((Op*)nullptr, c);
          } else if constexpr (Op::arity == 2) {
            check((Op*)nullptr, f, g);
            check((Op*)nullptr, i, j);
          } else {
            check((Op*)nullptr, f);
            if constexpr (Op::rule != type_rule::logical) check((Op*)nullptr, i);
          }
        }(),
        ...);
  }(all_ops{});
  CHECK(checked >= rows.size());

  // Scalars become parameters of the computation type; a destination of another type converts.
  const cg::kernel_desc sd = cg::kernel_family<decltype(as_node(f + 2.0)), double>::desc();
  CHECK(sd.scalars == std::vector<dtype>{dtype::float32});  // a weak scalar takes the tensor's type
  CHECK(sd.dst == dtype::float64);
  CHECK(cg::print_kernel(sd, {}).body.find("loom::dev::cvt<double>(element(p") != std::string::npos);
}

TEST_CASE("cuda codegen: cuda::explain names the kernel and its layout", "[cuda][codegen][source]") {
  cuda::tensor<float, shape<dyn, 1024>> a(8);
  cuda::tensor<float, shape<1024>> row;
  const std::string s = cuda::explain(a * row + 1.f);
  CHECK(s.find("loom plan: float32[8, 1024]") != std::string::npos);
  CHECK(s.find("cuda: kernel loom_ew_b2_") != std::string::npos);
  CHECK(s.find("broadcast, rank 2, 32-bit indices") != std::string::npos);
  CHECK(s.find("16-byte accesses of 4 elements") != std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Every generated kernel compiles
// ---------------------------------------------------------------------------------------------

TEST_CASE("cuda codegen: every op x dtype x layout compiles with NVRTC for sm_80 and sm_90",
          "[cuda][codegen][nvrtc]") {
  LOOM_REQUIRE_NVRTC();
  kernel_set set;
  const cg::layout_key contiguous{cg::layout_class::contiguous, 1, false};
  const cg::layout_key broadcast{cg::layout_class::broadcast, 2, false};
  const cg::layout_key strided{cg::layout_class::strided, 2, false};
  std::size_t combos = 0;
  for (const op_row& op : rows_of(all_ops{})) {
    for (dtype t : operand_dtypes(op)) {
      ++combos;
      add_kernel(set, cg::print_kernel(describe_op(op, t, false), contiguous));
      add_kernel(set, cg::print_kernel(describe_op(op, t, false), broadcast));
      add_kernel(set, cg::print_kernel(describe_op(op, t, true), strided));  // scalars of every type too
    }
  }
  // Destinations of another type (the store converts), other ranks, 64-bit indices, baked extents.
  const op_row add{"add", 2, type_rule::arithmetic, dtype::float32};
  for (dtype t : numeric_dtypes)
    for (dtype dst : all_dtypes)
      if (dst != t) add_kernel(set, cg::print_kernel(describe_op(add, t, true, dst, true), contiguous));
  const op_row where_op{"where", 3, type_rule::select, dtype::float32};
  for (dtype t : all_dtypes) {
    const cg::kernel_desc d = describe_op(where_op, t, false);
    for (std::uint8_t r : {1, 3, 8}) {
      add_kernel(set, cg::print_kernel(d, {cg::layout_class::broadcast, r, false}));
      add_kernel(set, cg::print_kernel(d, {cg::layout_class::strided, r, false}));
    }
    add_kernel(set, cg::print_kernel(d, {cg::layout_class::contiguous, 1, true}));
    add_kernel(set, cg::print_kernel(d, {cg::layout_class::broadcast, 2, true}));
    add_kernel(set, cg::print_kernel(d, {cg::layout_class::strided, 4, true}));

    cg::launch_shape ls;
    ls.key = {cg::layout_class::broadcast, 2, false};
    ls.vec = true;
    ls.elements = 8 * 1024;
    ls.units = ls.elements / d.lanes();
    ls.extent = {8, 1024 / d.lanes()};
    cg::array_cursor cs[4];
    for (auto& c : cs) c.stride = {1024, 1};
    cs[1].stride = {0, 1};
    const cg::baked_values bv{&ls, cs};
    add_kernel(set, cg::print_kernel(d, ls.key, &bv));
    ls.key = {cg::layout_class::strided, 2, false};
    add_kernel(set, cg::print_kernel(d, ls.key, &bv));
    ls.key = {cg::layout_class::contiguous, 1, false};
    add_kernel(set, cg::print_kernel(d, ls.key, &bv));
  }
  // A fill (no leaves) and a copy.
  cg::kernel_desc fill;
  fill.scalars = {dtype::float32};
  fill.element = "p.s0";
  add_kernel(set, cg::print_kernel(fill, contiguous));
  add_kernel(set, cg::print_kernel(fill, strided));

  // The expressions of the CPU tests, through their real types.
  {
    cuda::tensor<float, shape<dyn>> x(5), y(5);
    cuda::tensor<double, shape<9, 130>> xs, ys;
    cuda::tensor<std::int32_t, shape<dyn>> k(5);
    cuda::tensor<float, shape<130>> row;
    auto add_src = [&](const std::string& src) {
      const std::string body = body_of(src);
      const std::size_t at = body.find("loom_ew_");
      const std::string name = body.substr(at, body.find('(', at) - at);
      add_kernel(set, {name, body});
    };
    add_src(cuda::kernel_source(2.f * x + exp(-x) / (1.f + abs(y))));
    add_src(cuda::kernel_source((1.f - x) * 3 + y / 2.0 - 1.5f / (y + 2.f)));
    add_src(cuda::kernel_source(where(x > 0.f, x, 0.01f * x)));
    add_src(cuda::kernel_source(cast<float>(cast<double>(x))));
    add_src(cuda::kernel_source(k * 0.5f));
    add_src(cuda::kernel_source(pow(k, cast<std::int32_t>(abs(k)))));
    add_src(cuda::kernel_source((x > 0) && (y < 1)));
    add_src(cuda::kernel_source((x > 0) || !(y < 1)));
    add_src(cuda::kernel_source(xs * ys - row));
    add_src(cuda::kernel_source(xs * xs + xs));
    add_src(cuda::kernel_source(clamp(xs, -1.f, 1.f) + maximum(ys, 0.f)));
  }
  INFO(combos << " op x dtype combinations, " << set.size() << " distinct kernels");
  WARN(combos << " op x dtype combinations, " << set.size() << " distinct kernels");
  CHECK(combos >= 180);
  CHECK(set.size() >= 3 * combos);

  compile_for_sm80_and_sm90(set);
}

TEST_CASE("cuda codegen: index maps and generators print positions and lazy leaves, and compile with NVRTC",
          "[cuda][codegen][nvrtc][index_map]") {
  cuda::tensor<float, shape<dyn, dyn>> a(4, 5), b(3, 5);
  cuda::tensor<double, shape<dyn>> v(7);
  cuda::tensor<std::int32_t, shape<2, 3, 4>> k;
  // What the emitters print: affine maps nothing of their own, generators a position or a scalar,
  // concat and pad a selection whose operands load lazily.
  const cg::kernel_desc t = cg::kernel_family<decltype(as_node(transpose(a) * 2.f)), float>::desc();
  CHECK(t.element == "loom::dev::mul(x0, p.s0)");
  CHECK_FALSE(t.scalar_only());
  const cg::kernel_desc io = cg::kernel_family<decltype(as_node(iota<float>(shape<3, 4>{}))), float>::desc();
  REQUIRE(io.kinds.size() == 1);
  CHECK(io.kinds[0] == cg::leaf_kind::position);
  CHECK(io.element == "loom::dev::cvt<float>(x0)");
  CHECK(io.scalar_only());
  CHECK(io.lanes() == 1);
  const cg::kernel_desc c = cg::kernel_family<decltype(as_node(concat<0>(a, exp(b)))), float>::desc();
  CHECK(c.element == "(x0 < p.s0 ? p.a1[x1] : loom::dev::exp(p.a2[x2]))");
  CHECK((c.kinds == std::vector<cg::leaf_kind>{cg::leaf_kind::position, cg::leaf_kind::lazy, cg::leaf_kind::lazy}));
  const cg::kernel_desc pd = cg::kernel_family<decltype(as_node(pad<1>(a, 1, 2, 9.f))), float>::desc();
  CHECK(pd.element == "(p.s0 <= x0 && x0 < p.s1 ? p.a1[x1] : p.s2)");
  const cg::kernel_desc f = cg::kernel_family<decltype(as_node(full<double>(shape<dyn>{7}, 2) * v)), double>::desc();
  CHECK(f.element == "loom::dev::mul(p.s0, x0)");
  {
    // A reshape reads its operand in place where the strides regroup; a transposed operand's do
    // not: the binder asks for a copy, and the fallback expression reads a contiguous temporary.
    std::array<cg::array_cursor, 2> cs;
    std::array<cg::scalar_value, 1> sv;
    const auto direct = as_node(reshape(a, shape<dyn>{20}));
    cg::operand_sink sink{cs.data(), sv.data()};
    cg::binder<std::remove_const_t<decltype(direct)>>::bind(direct, sink, cpu::binding::identity(1));
    CHECK(cs[0].stride[0] == 1);
    const auto moved = as_node(reshape(transpose(a), shape<dyn>{20}));
    using M = std::remove_const_t<decltype(moved)>;
    cg::operand_sink sink2{cs.data(), sv.data()};
    CHECK_THROWS_AS(cg::binder<M>::bind(moved, sink2, cpu::binding::identity(1)), cg::reshape_needs_copy);
    // kernel_source, compile and explain of such an expression do not throw (fuzz corpus seed 1,
    // case 59): they show the contiguous kernel of the expression, and explain says why.
    const auto strided = cuda::view(fake_address<float>(1), shape<2, 2, 8, 3>{}, {400, 100, 3, 1});
    CHECK_NOTHROW(cuda::kernel_source(reshape(strided, shape<dyn, dyn, dyn>{2, 16, 3})));
    CHECK_THAT(cuda::explain(reshape(strided, shape<dyn, dyn, dyn>{2, 16, 3})),
               Catch::Contains("evaluated into a temporary first"));
    static_assert(std::is_same_v<cuda::detail::materialised<M, true>::type,
                                 reshape_node<leaf_node<cuda::tensor_view<const float, shape<dyn, dyn>>, true>, shape<dyn>>>);
  }

  LOOM_REQUIRE_NVRTC();
  kernel_set set;
  auto add_all = [&](const auto& e) {
    using N = decltype(as_node(e));
    using T = value_type_of<decltype(e)>;
    for (cg::layout_class cls : {cg::layout_class::contiguous, cg::layout_class::broadcast, cg::layout_class::strided})
      for (std::uint8_t r : {1, 2, 3})
        for (bool wide : {false, true}) {
          if (cls == cg::layout_class::contiguous && r > 1) continue;
          const auto& g = cg::kernel_family<N, T>::generated({cls, r, wide});
          add_kernel(set, {g.name, body_of(g.source)});
        }
  };
  add_all(transpose(a) * 2.f - flip<1>(transpose(a)));
  add_all(slice<0>(a, 1, 4, 2) + broadcast_to(slice<0>(b, 0, 1), shape<dyn, dyn>{2, 5}));
  add_all(permute<2, 0, 1>(k) + 1);
  add_all(reshape(v, shape<7, 1>{}) * 2.0);
  add_all(iota<float>(shape<dyn, dyn>{4, 5}) + a);
  add_all(iota<std::int64_t>(shape<3, 4>{}));
  add_all(zeros<float>(shape<dyn, dyn>{4, 5}) + ones<float>(shape<5>{}) * full<float>(shape<4, 1>{}, 3));
  add_all(concat<0>(a, exp(b)));
  add_all(concat<0>(a, b, a * 2.f));
  add_all(concat<1>(a, cast<double>(concat<1>(a, a)), iota<std::int32_t>(shape<dyn, dyn>{4, 1})));
  add_all(pad<1>(a, 1, 2, 9.f) * transpose(pad<0>(transpose(a), 1, 2)));
  add_all(pad<0>(cast<bool>(v), 3, 0, true));
  WARN(set.size() << " index map and generator kernels");
  CHECK(set.size() >= 100);
  compile_for_sm80_and_sm90(set);
}

TEST_CASE("cuda codegen: reduction kernels of every reducer and dtype compile with NVRTC", "[cuda][codegen][nvrtc][reduce]") {
  cuda::tensor<float, shape<dyn, dyn>> f(4, 5);
  cuda::tensor<double, shape<dyn, dyn>> d(4, 5);
  cuda::tensor<std::int32_t, shape<dyn, dyn>> i(4, 5);
  cuda::tensor<std::int64_t, shape<dyn, dyn>> l(4, 5);
  // The operand's expression is fused: the reduction kernel prints it like an elementwise one.
  const cg::reduce_desc& sd = cuda::detail::reduce_desc_of<decltype(as_node(sum(exp(f) * 2.f, axis<1>)))>();
  CHECK(sd.op.element == "loom::dev::mul(loom::dev::exp(x0), p.s0)");
  CHECK(sd.acc_c_name() == "double");
  CHECK(cuda::detail::reduce_desc_of<decltype(as_node(sum(i > 0)))>().acc_c_name() == "long long");
  CHECK(cuda::detail::reduce_desc_of<decltype(as_node(argmax(f, axis<0>)))>().out == dtype::int64);

  LOOM_REQUIRE_NVRTC();
  kernel_set set;
  auto add_all = [&](const auto& e) {
    using RN = decltype(as_node(e));
    const cg::reduce_desc& rd = cuda::detail::reduce_desc_of<RN>();
    for (auto [kr, rr] : {std::pair<std::size_t, std::size_t>{1, 1}, {2, 1}, {1, 3}, {3, 2}})
      for (bool columns : {false, true}) add_kernel(set, cg::print_reduce_kernel(rd, kr, rr, columns));
    add_kernel(set, cg::print_reduce_finish(rd));
  };
  auto every_reducer = [&](const auto& x) {
    add_all(sum(x, axis<1>));
    add_all(mean(x, axis<0>));
    add_all(prod(x, axis<1>));
    add_all(max(x, axis<1>));
    add_all(min(x));
    add_all(argmax(x, axis<1>));
    add_all(argmin(x, axis<0>));
  };
  every_reducer(f);
  every_reducer(d);
  every_reducer(i);
  every_reducer(l);
  every_reducer(f > 0.f);
  add_all(sum(concat<1>(f, transpose(slice<1>(d, 0, 4))) * iota<float>(shape<dyn, dyn>{4, 9}), axis<1>));
  add_all(max(pad<0>(f, 1, 2, -1.f), axes<0, 1>, keepdims));
  WARN(set.size() << " reduction kernels");
  CHECK(set.size() >= 300);
  compile_for_sm80_and_sm90(set);
}

TEST_CASE("cuda codegen: row kernels (reductions along rows, broadcast back) print once and compile with NVRTC",
          "[cuda][codegen][nvrtc][rows]") {
  cuda::tensor<float, shape<dyn, dyn>> f(4, 5);
  cuda::tensor<float, shape<dyn>> g(5);
  cuda::tensor<double, shape<dyn, dyn>> d(4, 5);
  cuda::tensor<std::int32_t, shape<dyn, dyn>> i(4, 5);
  cuda::tensor<float, shape<dyn, dyn, dyn>> t(2, 3, 5);
  auto softmax = [](const auto& x) {
    auto e = exp(x - max(x, axis<1>, keepdims));
    return e / sum(e, axis<1>, keepdims);
  };
  auto layer_norm = [](const auto& x, const auto& gamma) {
    auto c = x - mean(x, axis<1>, keepdims);
    return c * rsqrt(mean(c * c, axis<1>, keepdims) + 1e-5f) * gamma + gamma;
  };
  // Which expressions take a row kernel: every reduction over the same trailing axes, keepdims,
  // reached through elementwise maps only.
  using cuda::detail::row_rank_v;
  static_assert(row_rank_v<decltype(as_node(softmax(f)))> == 1);
  static_assert(row_rank_v<decltype(as_node(layer_norm(f, g)))> == 1);
  static_assert(row_rank_v<decltype(as_node(t - mean(t, axes<1, 2>, keepdims)))> == 2);
  static_assert(row_rank_v<decltype(as_node(f * 2.f))> == 0);
  static_assert(row_rank_v<decltype(as_node(f - sum(f, axis<0>, keepdims)))> == -1);  // a column sum
  static_assert(row_rank_v<decltype(as_node(sum(f, axis<1>)))> == -1);                // no keepdims
  static_assert(row_rank_v<decltype(as_node(t - sum(t, axis<2>, keepdims) + max(t, axes<1, 2>, keepdims)))> == -1);
  static_assert(row_rank_v<decltype(as_node(transpose(f - sum(f, axis<1>, keepdims))))> == -1);  // an index map over it

  // The description: nested reductions first, the repeated max a candidate to reuse.
  const cg::row_desc& sd = cuda::detail::row_family<decltype(as_node(softmax(f))), float>::desc();
  // x over its row's largest magnitude: a division by a row value with no operand to keep
  const cg::row_desc& qd = cuda::detail::row_family<decltype(as_node(f / max(abs(f), axis<1>, keepdims))), float>::desc();
  REQUIRE(sd.stages.size() == 3);
  CHECK(sd.stages[0].red.reducer == "max");
  CHECK(sd.stages[1].twins == std::vector<std::size_t>{0});
  CHECK(sd.stages[2].red.reducer == "sum");
  CHECK(sd.stages[2].element == "loom::dev::exp(loom::dev::sub(x2, r1))");
  CHECK(sd.desc.element == "loom::dev::div(loom::dev::exp(loom::dev::sub(x0, r0)), r2)");
  CHECK(cg::detail::renumbered("loom::dev::add(x12, p.a13[x13]) * p.s4 + max(x14)", 12, 3) ==
        "loom::dev::add(x0, p.a1[x1]) * p.s1 + max(x2)");
  // The kernel bound to its arrays (softmax over one array): the repeated max is a copy, the row
  // is taken from registers without a test, the sum adds each thread's operands pairwise in float
  // and folds once; with up to 8 values a thread it keeps exp(x - max) for the quotient, so exp
  // is printed once. The general kernel tests p.same and p.hits instead.
  {
    const auto body = [](const cg::kernel_text& t) { return t.body; };
    const auto count = [](const std::string& text, const std::string& what) {
      std::size_t n = 0;
      for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
      return n;
    };
    const std::string kept = body(cg::print_row_kernel(sd, 1, 256, 8, 4, true));
    CHECK(count(kept, "loom::dev::exp(") == 1);
    CHECK(kept.find("loom::dev::div(e2[i], r2)") != std::string::npos);
    CHECK(kept.find("const float r1 = r0;") != std::string::npos);
    CHECK(kept.find("p.same") == std::string::npos);
    CHECK(kept.find("p.hits &") == std::string::npos);
    CHECK(kept.find("t[i] += t[i + 4];") != std::string::npos);
    CHECK(kept.find("st2::fold(acc, t[0], 0);") != std::string::npos);
    CHECK(kept.find("b.i = __shfl_xor_sync") == std::string::npos);  // no index travels for max and sum
    // the quotient: one reciprocal a row, div_row() per element, div() again for a group out of
    // div_row's ranges
    CHECK(kept.find("const loom::dev::row_divisor d2 = loom::dev::row_divisor_of(r2);") != std::string::npos);
    CHECK(kept.find("loom::dev::div_row(e2[i], d2, ok)") != std::string::npos);
    CHECK(kept.find("bool ok = d2.fast;") != std::string::npos);
    CHECK(kept.find("__launch_bounds__(256, 5)") != std::string::npos);
    const std::string wide = body(cg::print_row_kernel(sd, 1, 256, 16, 4, true));
    CHECK(count(wide, "loom::dev::exp(") == 1);  // 16 a thread: kept too, without the 5-block bound
    CHECK(wide.find("__launch_bounds__(256)") != std::string::npos);
    CHECK(wide.find("t[i] += t[i + 8];") != std::string::npos);
    CHECK(wide.find("loom::dev::div_row(e2[i], d2, ok)") != std::string::npos);
    // a division by something else than a float row value is left to div()
    std::vector<std::size_t> used;
    CHECK(cg::detail::row_divisions("loom::dev::div(x0, loom::dev::add(r2, x1))", sd, used) ==
          "loom::dev::div(x0, loom::dev::add(r2, x1))");
    CHECK(cg::detail::row_divisions("loom::dev::div(loom::dev::div(x0, r2), r0) + loom::dev::div(x1, r2)", sd, used) ==
          "loom::dev::div_row(loom::dev::div_row(x0, d2, ok), d0, ok) + loom::dev::div_row(x1, d2, ok)");
    CHECK(used == std::vector<std::size_t>{0, 2});
    const std::string scaled = body(cg::print_row_kernel(qd, 1, 256, 16, 4, true));
    CHECK(scaled.find("loom::dev::div_row(x0, d0, ok)") != std::string::npos);
    CHECK(scaled.find("__launch_bounds__(256, 5)") != std::string::npos);  // nothing kept: the 5-block bound stays
    const std::string general = body(cg::print_row_kernel(sd, 1, 256, 16, 4));
    CHECK(general.find("if (p.same1 == 0) r1 = r0;") != std::string::npos);
    CHECK(general.find("p.hits &") != std::string::npos);
    const cg::row_desc& ad = cuda::detail::row_family<decltype(as_node(cast<float>(argmax(f, axis<1>, keepdims)) + f)), float>::desc();
    CHECK(body(cg::print_row_kernel(ad, 1, 32)).find("b.i = __shfl_xor_sync") != std::string::npos);
  }
  // kernel_source / explain / compile name the row kernel; other reductions say why there is none
  CHECK(cuda::kernel_source(softmax(f)).find("loom_rw_") != std::string::npos);
  CHECK(&cuda::kernel_source(softmax(f)) == &cuda::kernel_source(softmax(f)));
  CHECK(cuda::explain(layer_norm(f, g)).find("one row kernel loom_rw_") != std::string::npos);
  CHECK(cuda::explain(f - sum(f, axis<0>, keepdims)).find("kernels of its own") != std::string::npos);
  CHECK_THROWS_WITH(cuda::kernel_source(f - sum(f, axis<0>, keepdims)), Catch::Contains("no kernel generator"));
  // a lone reduction: its own kernel (a block per row here; a thread per column for column sums)
  CHECK(cuda::kernel_source(sum(f, axis<1>)).find("loom_rd_") != std::string::npos);
  CHECK(cuda::kernel_source(sum(f * f, axis<0>)).find("loom_rd_") != std::string::npos);  // 5 outputs: too few for columns
  CHECK(cuda::explain(max(f, axis<1>)).find("cuda: reduction kernel loom_rd_") != std::string::npos);

  LOOM_REQUIRE_NVRTC();
  kernel_set set;
  auto add_all = [&](const auto& e) {
    using N = decltype(as_node(e));
    using T = typename N::value_type;
    const cg::row_desc& d = cuda::detail::row_family<N, T>::desc();
    for (std::size_t kr : {1u, 2u, 3u})
      for (int G : {32, 256}) add_kernel(set, cg::print_row_kernel(d, kr, G));
    // the row cache: one element at a time and in 16-byte groups, a few sizes
    if (d.cached >= 0) {
      const dtype t = d.desc.leaves[std::size_t(d.cached)];
      const int W = cg::row_vector_width(t), most = std::min(32, int(128 / cg::dtype_size(t)));
      for (auto [G, K, V] : {std::tuple{32, 1, 1}, {32, most, W}, {256, 8, 1}, {256, std::min(16, most), W}})
        add_kernel(set, cg::print_row_kernel(d, 1, G, K, V));
      add_kernel(set, cg::print_row_kernel(d, 2, 256, 4, 1));
      // bound to its arrays: keeping an operand for the output (K <= 8) and not
      add_kernel(set, cg::print_row_kernel(d, 1, 256, 8, W, true));
      add_kernel(set, cg::print_row_kernel(d, 1, 256, std::min(16, most), W, true));
    }
    add_kernel(set, cg::print_row_kernel(d, 1, 256, 0, 1, true));
  };
  add_all(softmax(f));
  add_all(softmax(d));
  add_all(layer_norm(f, g));
  add_all(f * rsqrt(mean(f * f, axis<1>, keepdims) + 1e-6f));
  add_all(i * 2 - max(i, axis<1>, keepdims) + min(i, axis<1>, keepdims) * sum(i, axis<1>, keepdims) +
          prod(i, axis<1>, keepdims));
  add_all(cast<float>(argmax(f, axis<1>, keepdims) - argmin(d, axis<1>, keepdims)) + f);
  add_all(where(sum(f > 0.f, axis<1>, keepdims) > 2, f, -f));
  add_all(t - mean(t, axes<1, 2>, keepdims));
  add_all(f - max(concat<1>(f, f) + iota<float>(shape<dyn, dyn>{4, 10}), axis<1>, keepdims));
  add_all(f * mean(pad<1>(f, 1, 1, 0.5f), axis<1>, keepdims));
  // div_row without a kept operand: the bound kernels that print it (a block and a warp a row)
  add_kernel(set, cg::print_row_kernel(qd, 1, 256, 16, 4, true));
  add_kernel(set, cg::print_row_kernel(qd, 1, 32, 8, 4, true));
  WARN(set.size() << " row kernels");
  CHECK(set.size() == 142);  // 6 plain, 5 cached and 3 bound kernels for each of the 10 expressions, and 2
  compile_for_sm80_and_sm90(set);
}

TEST_CASE("cuda codegen: floor, ceil and round of bool are the value itself, and compile with NVRTC",
          "[cuda][codegen][preamble][nvrtc]") {
  // Found by the fuzz corpus (tests/gpu/test_fuzz_gpu.cpp): the device helpers sent bool to the
  // float/double overloads of m_floor, which NVRTC (and g++) reject as ambiguous.
  check_unary_op<bool>("floor", [](bool a) { return dev::floor(a); }, [](bool a) { return ops::floor::apply(a); });
  check_unary_op<bool>("ceil", [](bool a) { return dev::ceil(a); }, [](bool a) { return ops::ceil::apply(a); });
  check_unary_op<bool>("round", [](bool a) { return dev::round(a); }, [](bool a) { return ops::round::apply(a); });
  LOOM_REQUIRE_NVRTC();
  const auto b = cuda::view(fake_address<bool>(1), shape<dyn>{64});
  CHECK(cuda::compile(floor(b) && ceil(b)).cubin_bytes > 0);
  CHECK(cuda::compile(round(b) != b).cubin_bytes > 0);
}

TEST_CASE("cuda codegen: cuda::compile gives the kernel's name, architecture and cubin size", "[cuda][codegen][nvrtc]") {
  LOOM_REQUIRE_NVRTC();
  cuda::tensor<float, shape<dyn, 1024>> dx(8);
  const auto e = exp(dx) * 2.f;
  const std::string& src = cuda::kernel_source(e);
  for (const char* arch : {"sm_80", "sm_90"}) {
    const cuda::compiled_kernel k = cuda::compile(e, cuda::options{.arch = arch});
    CHECK(k.name.rfind("loom_ew_c_", 0) == 0);
    CHECK(src.find(k.name + "(") != std::string::npos);
    CHECK(k.arch == arch);
    CHECK_FALSE(k.is_ptx);
    CHECK(k.cubin_bytes > 1000);
    CHECK(k.cubin_bytes == k.program->image.size());
    CHECK(k.layout == "contiguous, rank 1, 32-bit indices");
  }
  if (!cuda::available()) CHECK(cuda::compile(e).arch == "sm_90");  // the default without a device
  const auto baked = cuda::compile(e, cuda::options{.arch = "sm_90", .bake_extents = true});
  CHECK(baked.name.rfind("loom_ew_cx_", 0) == 0);
  CHECK(baked.cubin_bytes > 1000);
}

// ---------------------------------------------------------------------------------------------
// Device tensors as expressions, and without a device
// ---------------------------------------------------------------------------------------------

TEST_CASE("cuda codegen: device tensors are device expression leaves", "[cuda][tensor]") {
  using DT = cuda::tensor<float, shape<dyn, 1024>>;
  static_assert(array_like<DT>);
  static_assert(DT::space == memory_space::device);
  static_assert(std::is_same_v<DT::value_type, float>);
  static_assert(std::is_same_v<DT::shape_type, shape<dyn, 1024>>);
  static_assert(std::is_same_v<decltype(std::declval<DT&>().data()), cuda::device_ptr<float>>);
  static_assert(std::is_same_v<decltype(std::declval<const DT&>().data()), cuda::device_ptr<const float>>);
  using E = decltype(exp(std::declval<DT&>()) * 2.f);
  static_assert(E::space == memory_space::device);
  static_assert(plan_of<E>::kernels == 1);
  static_assert(cg::emittable<node_t<E>>);
  static_assert(!cg::emittable<opaque_node>);
  using V = decltype(cuda::view(std::declval<float*>(), shape<dyn>{4}));
  static_assert(V::space == memory_space::device && !V::read_only);
  using CV = decltype(cuda::view(std::declval<const float*>(), shape<dyn>{4}));
  static_assert(CV::read_only);
  static_assert(cg::param_count<node_t<E>>::leaves == 1 && cg::param_count<node_t<E>>::scalars == 1);

  DT t(3);
  CHECK(t.shape() == shape<dyn, 1024>{3});
  CHECK(t.size() == 3 * 1024);
  CHECK(t.extent(1) == 1024);
  CHECK(t.strides() == std::array<index_t, 2>{1024, 1});
  CHECK(t.allocated() == cuda::available());
  CHECK(bool(t.data()) == cuda::available());

  float* p = fake_address<float>(7);
  auto v = cuda::view(p, shape<dyn, 4>{2});
  CHECK(v.data().get() == p);
  CHECK(v.strides() == std::array<index_t, 2>{4, 1});
  auto sv = cuda::view(cuda::device_ptr<float>(p), shape<3, 4>{}, {1, 3});
  CHECK(sv.stride(1) == 3);
  CHECK_THROWS_AS(cuda::view(static_cast<float*>(nullptr), shape<dyn>{4}), loom::error);
  CHECK_NOTHROW(cuda::view(static_cast<float*>(nullptr), shape<dyn>{0}));
  CHECK_THROWS_AS(cuda::view(reinterpret_cast<float*>(fake_address<char>(7, 1)), shape<dyn>{4}), loom::error);
}

TEST_CASE("cuda codegen: without a device, tensors build and every use throws cuda_error", "[cuda][tensor]") {
  if (cuda::available()) {
    WARN("a CUDA device is present: the no-device behaviour is not exercised here (the GPU tests cover the device)");
    return;
  }
  const std::size_t n = 8;
  tensor<float, shape<dyn, 1024>> y(n);
  cuda::tensor<float, shape<dyn, 1024>> dx(n), dy(n);  // contract/cuda.cpp: must not throw
  CHECK_FALSE(dx.allocated());
  CHECK_FALSE(cuda::kernel_source(exp(dx) * 2.f).empty());
  auto expect_reason = [](auto&& f) {
    try {
      f();
      FAIL("no exception");
    } catch (const cuda_error& e) {
      CHECK(std::string(e.what()) == cuda::unavailable_reason());
    }
  };
  expect_reason([&] { dy = exp(dx); });
  expect_reason([&] { dy += dx; });
  expect_reason([&] { dy = 1.f; });
  expect_reason([&] { dy = dx; });
  expect_reason([&] { cuda::copy(dx, y); });
  expect_reason([&] { cuda::copy(y, dx); });
  expect_reason([&] { (void)cuda::eval(dx + 1.f); });
  expect_reason([&] { cuda::tensor<float, shape<dyn, 1024>> t = exp(dx); });
  expect_reason([&] { dy.assign(exp(dx), cuda::stream_ref{}); });
  expect_reason([&] { cuda::tensor<float, shape<4>> t(shape<4>{}, cuda::stream_ref{}); });
  // Shapes are checked first: a mismatch is a shape_error with or without a device.
  cuda::tensor<float, shape<dyn, 1024>> other(n + 1);
  CHECK_THROWS_AS(dy = dx + other, shape_error);
  CHECK_THROWS_AS(cuda::copy(other, y), shape_error);
  // Moving keeps nothing allocated and does not throw.
  cuda::tensor<float, shape<dyn, 1024>> moved(std::move(dx));
  CHECK(moved.shape() == shape<dyn, 1024>{n});
  cuda::tensor<float, shape<dyn, 1024>> copied(moved);
  CHECK_FALSE(copied.allocated());
}

TEST_CASE("cuda codegen: an expression without a kernel generator throws cuda_error", "[cuda][codegen]") {
  cuda::tensor<float, shape<dyn>> d(4);
  opaque_node o;
  CHECK_THROWS_AS(cuda::kernel_source(o), cuda_error);
  CHECK_THROWS_AS(cuda::compile(o), cuda_error);
  CHECK_THROWS_WITH(cuda::kernel_source(o + 1.f), Catch::Contains("no kernel generator yet"));
  CHECK_THROWS_AS(d = o * 2.f, cuda_error);
}
