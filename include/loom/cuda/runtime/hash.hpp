// loom/cuda/runtime/hash.hpp: a stable 128-bit hash for cache keys and disk-entry checksums.
//
// Why not std::hash: it is neither stable across runs nor across standard libraries, and a disk
// cache shared by processes and loom builds needs a key that means the same thing everywhere and
// forever (the tests pin fixed values). The hash only has to separate accidental differences --
// it guards a cache, not a secret -- but it must be fast enough to checksum a cubin on every
// disk-cache hit.
//
// Construction: the state is two 64-bit lanes. Each 16-byte block is xored into the lanes, then
// the state goes through a mixing step that is a bijection of the 128-bit state (odd multiplies
// and xor-shifts inside each lane, add and rotate-xor between the lanes), so no input can
// collapse the state. The last partial block is zero-padded and the total length is absorbed
// after it, so inputs that differ only by trailing zero bytes still differ. Words are assembled
// little-endian from bytes: the same bytes hash the same on every host. Fields of a key are
// length-prefixed (field()), so ("ab","c") and ("a","bc") differ.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace loom::cuda::detail {

/// A 128-bit hash value.
struct hash128 {
  std::uint64_t lo = 0;
  std::uint64_t hi = 0;

  friend constexpr bool operator==(const hash128& a, const hash128& b) noexcept { return a.lo == b.lo && a.hi == b.hi; }

  /// 32 lowercase hex digits, the high word first: the name of a disk-cache entry.
  [[nodiscard]] std::string hex() const {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s(32, '0');
    for (int i = 0; i < 16; ++i) {
      s[static_cast<std::size_t>(15 - i)] = digits[(hi >> (4 * i)) & 15u];
      s[static_cast<std::size_t>(31 - i)] = digits[(lo >> (4 * i)) & 15u];
    }
    return s;
  }
};

/// For unordered containers keyed by hash128 (the value is already uniformly spread).
struct hash128_hasher {
  std::size_t operator()(const hash128& h) const noexcept { return static_cast<std::size_t>(h.lo ^ h.hi); }
};

/// Incremental hashing: feed bytes and fields, then read the 128- or 64-bit result.
class hasher {
 public:
  explicit constexpr hasher(std::uint64_t seed = 0) noexcept : a_(seed ^ k0), b_(rotl(seed, 32) ^ k3) {}

  /// Absorbs `n` bytes.
  hasher& bytes(const void* data, std::size_t n) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
    length_ += n;
    if (buffered_ != 0) {
      const std::size_t take = n < 16 - buffered_ ? n : 16 - buffered_;
      std::memcpy(buffer_ + buffered_, p, take);
      buffered_ += take;
      p += take;
      n -= take;
      if (buffered_ < 16) return *this;
      absorb(load(buffer_), load(buffer_ + 8));
      buffered_ = 0;
    }
    for (; n >= 16; n -= 16, p += 16) absorb(load(p), load(p + 8));
    if (n != 0) std::memcpy(buffer_, p, n);
    buffered_ = n;
    return *this;
  }

  /// Absorbs a 64-bit value as 8 little-endian bytes.
  hasher& u64(std::uint64_t v) noexcept {
    unsigned char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
    return bytes(b, 8);
  }

  /// Absorbs a length-prefixed string, so that consecutive fields cannot run into each other.
  hasher& field(std::string_view s) noexcept {
    u64(s.size());
    return bytes(s.data(), s.size());
  }

  /// The 128-bit hash of everything absorbed so far (the hasher can keep absorbing).
  [[nodiscard]] hash128 finish128() const noexcept {
    hasher h = *this;
    unsigned char last[16] = {};
    std::memcpy(last, h.buffer_, h.buffered_);
    h.absorb(load(last), load(last + 8));
    h.absorb(h.length_, k2 ^ h.buffered_);
    h.permute();
    return {h.a_, h.b_};
  }

  /// The 64-bit hash of everything absorbed so far.
  [[nodiscard]] std::uint64_t finish64() const noexcept {
    const hash128 h = finish128();
    return h.lo ^ rotl(h.hi, 29);
  }

 private:
  // Odd constants with no structure: fractional digits of the golden ratio and of sqrt(2),
  // sqrt(3), sqrt(5).
  static constexpr std::uint64_t k0 = 0x9e3779b97f4a7c15ull;
  static constexpr std::uint64_t k1 = 0x6a09e667f3bcc909ull;
  static constexpr std::uint64_t k2 = 0xbb67ae8584caa73bull;
  static constexpr std::uint64_t k3 = 0x3c6ef372fe94f82bull;

  static constexpr std::uint64_t rotl(std::uint64_t x, int r) noexcept { return (x << r) | (x >> (64 - r)); }

  static std::uint64_t load(const unsigned char* p) noexcept {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  }

  // A bijection of one lane: xor-shifts and multiplies by odd constants are each invertible.
  static constexpr std::uint64_t mix(std::uint64_t x, std::uint64_t k) noexcept {
    x ^= x >> 31;
    x *= k;
    x ^= x >> 29;
    x *= k0;
    x ^= x >> 32;
    return x;
  }

  // A bijection of the whole state: (a, b) -> (a + b, rotl(b) ^ (a + b)) is invertible.
  constexpr void permute() noexcept {
    a_ += b_;
    b_ = rotl(b_, 23) ^ a_;
    a_ = mix(a_, k1);
    b_ = mix(b_, k2);
    a_ += b_;
    b_ = rotl(b_, 41) ^ a_;
  }

  constexpr void absorb(std::uint64_t w0, std::uint64_t w1) noexcept {
    a_ ^= w0;
    b_ ^= w1;
    permute();
  }

  std::uint64_t a_;
  std::uint64_t b_;
  unsigned char buffer_[16] = {};
  std::size_t buffered_ = 0;
  std::uint64_t length_ = 0;
};

/// The 64-bit hash of `n` bytes (the disk cache's payload checksum).
inline std::uint64_t hash64(const void* data, std::size_t n, std::uint64_t seed = 0) noexcept {
  return hasher(seed).bytes(data, n).finish64();
}

/// The 128-bit hash of `n` bytes.
inline hash128 hash128_of(const void* data, std::size_t n, std::uint64_t seed = 0) noexcept {
  return hasher(seed).bytes(data, n).finish128();
}

}  // namespace loom::cuda::detail
