// Path dispatch, decided here and nowhere else.
//
// x86-64: the AVX2 and AVX-512 VNNI tables exist only when TINYQUANT_HAVE_X86_PATHS is defined
// (their files are compiled in), and are supported only when the running CPU reports the
// features. ARM: the smlad path is the default when the compiler targets the DSP extension.
// AArch64 (TINYQUANT_HAVE_NEON_PATHS): neon always, neondot when the CPU has the dot product.
// The reference and (emulated) smlad paths are supported everywhere.
//
// The forced path is one atomic word (std::atomic is part of freestanding C++17 and 32-bit
// loads/stores are lock-free on every Cortex-M), so force_path() may race with kernels safely;
// a kernel sees either the old or the new path.
#include <atomic>
#include <cstdint>
#if !defined(TINYQUANT_RT_FREESTANDING)
#include <cstdlib>
#include <cstring>
#endif
#if defined(TINYQUANT_HAVE_X86_PATHS)
#include <cpuid.h>
#endif
#if defined(TINYQUANT_HAVE_X86_PATHS) && !defined(TINYQUANT_RT_FREESTANDING) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(TINYQUANT_HAVE_NEON_PATHS) && !defined(TINYQUANT_RT_FREESTANDING) && defined(__linux__)
#include <sys/auxv.h>
#endif

#include "path_kernels.hpp"
#include "tinyquant/rt/dsp.hpp"
#include "tinyquant/rt/kernels.hpp"
#include "validate.hpp"

namespace tinyquant::rt {
namespace {

constexpr uint32_t kEnvNotRead = 0xFFFFFFFFu;

// path_bits of the forced path; 0 = none; kEnvNotRead until the environment has been consulted.
#if defined(TINYQUANT_RT_FREESTANDING)
std::atomic<uint32_t> g_forced{0};
#else
std::atomic<uint32_t> g_forced{kEnvNotRead};
#endif

#if defined(TINYQUANT_RT_ONLY_SMLAD)
// Single-path build (path_kernels.hpp): the smlad kernels are called directly; this table only
// marks the path as present.
constexpr detail::PathKernels kOnlySmlad = {Path::kSmlad, nullptr, nullptr,
                                            nullptr,      nullptr, nullptr};
#endif

#if defined(TINYQUANT_HAVE_X86_PATHS)
bool avx512vnni_usable() noexcept {
  return __builtin_cpu_supports("avx512vnni") != 0 && __builtin_cpu_supports("avx512bw") != 0 &&
         __builtin_cpu_supports("avx512vl") != 0;
}

// AMX needs the CPU bits (AMX-TILE, AMX-INT8, plus AVX-512 VNNI for its small-m and packing
// code) and, on Linux, the kernel's permission to use the 8 KiB tile state, asked once per
// process (ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA). Without an OS to grant that state
// (freestanding builds) the path is reported unsupported.
#if !defined(TINYQUANT_RT_FREESTANDING)
std::atomic<int32_t> g_amx_state{0};  // 0 = not asked yet, 1 = granted, -1 = refused
#endif

bool amx_usable() noexcept {
#if defined(TINYQUANT_RT_FREESTANDING)
  return false;
#else
  const int32_t state = g_amx_state.load(std::memory_order_acquire);
  if (state != 0) return state > 0;
  // CPUID leaf 7, sub-leaf 0, EDX: bit 24 AMX-TILE, bit 25 AMX-INT8. Read directly because
  // clang 14's __builtin_cpu_supports does not know the AMX feature names.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool amx_bits = __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) != 0 &&
                        ((edx >> 24) & 1u) != 0 && ((edx >> 25) & 1u) != 0;
  bool ok = amx_bits && avx512vnni_usable();
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  if (ok) ok = syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#endif
  g_amx_state.store(ok ? 1 : -1, std::memory_order_release);
  return ok;
#endif
}
#endif

#if defined(TINYQUANT_HAVE_NEON_PATHS)
// AArch64: Advanced SIMD is part of the base architecture. The dot product (SDOT) is optional
// from ARMv8.2: hosted Linux builds ask the kernel (AT_HWCAP), so a baseline build still uses it
// on a core that has it; elsewhere (freestanding, other OSes) the compiler flags decide.
bool neon_dot_usable() noexcept {
#if !defined(TINYQUANT_RT_FREESTANDING) && defined(__linux__)
#if defined(HWCAP_ASIMDDP)
  constexpr unsigned long kHwcapAsimdDp = HWCAP_ASIMDDP;
#else
  constexpr unsigned long kHwcapAsimdDp = 1ul << 20;  // the kernel's HWCAP_ASIMDDP bit
#endif
  return (getauxval(AT_HWCAP) & kHwcapAsimdDp) != 0;
#elif defined(__ARM_FEATURE_DOTPROD)
  return true;
#else
  return false;
#endif
}
#endif

const detail::PathKernels* compiled_table(Path p) noexcept {
#if defined(TINYQUANT_RT_ONLY_SMLAD)
  return p == Path::kSmlad ? &kOnlySmlad : nullptr;
#else
  switch (p) {
    case Path::kReference:
      return detail::reference_kernels();
    case Path::kSmlad:
      return detail::smlad_kernels();
#if defined(TINYQUANT_HAVE_X86_PATHS)
    case Path::kAvx2:
      return __builtin_cpu_supports("avx2") != 0 ? detail::avx2_kernels() : nullptr;
    case Path::kAvx512Vnni:
      return (__builtin_cpu_supports("avx512vnni") != 0 &&
              __builtin_cpu_supports("avx512bw") != 0 && __builtin_cpu_supports("avx512vl") != 0)
                 ? detail::avx512vnni_kernels()
                 : nullptr;
    case Path::kAmx:
      return amx_usable() ? detail::amx_kernels() : nullptr;
#endif
#if defined(TINYQUANT_HAVE_NEON_PATHS)
    case Path::kNeon:
      return detail::neon_kernels();
    case Path::kNeonDot:
      return neon_dot_usable() ? detail::neondot_kernels() : nullptr;
#endif
    default:
      return nullptr;
  }
#endif
}

constexpr Path kAllPaths[] = {Path::kReference, Path::kSmlad,   Path::kAvx2, Path::kAvx512Vnni,
                              Path::kNeon,      Path::kNeonDot, Path::kAmx};

uint32_t compute_supported() noexcept {
  uint32_t bits = 0;
  for (Path p : kAllPaths) {
    if (compiled_table(p) != nullptr) bits |= path_bits(p);
  }
  return bits;
}

#if !defined(TINYQUANT_RT_FREESTANDING)
Path path_from_name(const char* name) noexcept {
  for (Path p : kAllPaths) {
    if (std::strcmp(name, path_name(p)) == 0) return p;
  }
  return Path::kAuto;
}
#endif

// The forced path bits, reading TINYQUANT_PATH at first use on hosted builds. An unknown or
// unsupported name is ignored (dispatch stays automatic). Freestanding builds never read the
// environment and need no compare-and-swap (absent on ARMv6-M).
uint32_t forced_bits() noexcept {
  const uint32_t bits = g_forced.load(std::memory_order_acquire);
#if defined(TINYQUANT_RT_FREESTANDING)
  return bits;
#else
  if (bits != kEnvNotRead) return bits;
  uint32_t from_env = 0;
  if (const char* env = std::getenv("TINYQUANT_PATH")) {
    const Path p = path_from_name(env);
    if ((supported_paths() & path_bits(p)) != 0) from_env = path_bits(p);
  }
  uint32_t expected = kEnvNotRead;
  // Keep a force_path() that won the race.
  if (!g_forced.compare_exchange_strong(expected, from_env, std::memory_order_acq_rel)) {
    return expected;
  }
  return from_env;
#endif
}

}  // namespace

// Recomputed per call (a few feature-bit tests) rather than cached in a function-local static,
// whose guard would pull C++ runtime support into freestanding builds.
uint32_t supported_paths() noexcept {
  return compute_supported();
}

Path default_path() noexcept {
#if defined(TINYQUANT_RT_ONLY_SMLAD)
  return Path::kSmlad;  // the only path compiled in
#endif
  const uint32_t forced = forced_bits();
  if (forced != 0 && (supported_paths() & forced) != 0) return static_cast<Path>(forced);
  const uint32_t s = supported_paths();
  if ((s & path_bits(Path::kAmx)) != 0) return Path::kAmx;  // hands m < 16 to VNNI kernels
  if ((s & path_bits(Path::kAvx512Vnni)) != 0) return Path::kAvx512Vnni;
  if ((s & path_bits(Path::kAvx2)) != 0) return Path::kAvx2;
  if ((s & path_bits(Path::kNeonDot)) != 0) return Path::kNeonDot;
  if ((s & path_bits(Path::kNeon)) != 0) return Path::kNeon;
#if TINYQUANT_RT_NATIVE_DSP
  return Path::kSmlad;  // real SMLAD/SXTB16 instructions
#else
  return Path::kReference;  // off-ARM the smlad path is an emulation, slower than plain loops
#endif
}

Status force_path(Path p) noexcept {
  // One path, not a mask of several: (Path)3 would pass a test for any common bit, and every
  // kAuto call after it would find no kernel for it.
  if (p != Path::kAuto && !detail::runnable_path(p)) {
    return Status::kPathUnavailable;
  }
  g_forced.store(path_bits(p), std::memory_order_release);
  return Status::kOk;
}

const char* path_name(Path p) noexcept {
  switch (p) {
    case Path::kAuto:
      return "auto";
    case Path::kReference:
      return "reference";
    case Path::kSmlad:
      return "smlad";
    case Path::kAvx2:
      return "avx2";
    case Path::kAvx512Vnni:
      return "avx512vnni";
    case Path::kNeon:
      return "neon";
    case Path::kNeonDot:
      return "neondot";
    case Path::kAmx:
      return "amx";
  }
  return "unknown";
}

namespace detail {

const PathKernels* path_kernels(Path p) noexcept {
  if (p == Path::kAuto) p = default_path();
  if ((supported_paths() & path_bits(p)) == 0) return nullptr;
  return compiled_table(p);
}

}  // namespace detail
}  // namespace tinyquant::rt
