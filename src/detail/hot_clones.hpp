// Internal: TINYQUANT_HOT_CLONES marks a hot loop's function for an AVX2 clone next to the
// baseline one on x86-64 Linux hosts, picked once at load time through an ifunc. The loops
// themselves are plain C++ written so the compiler vectorises them. ASan builds get the
// baseline version only.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__) && !defined(__SANITIZE_ADDRESS__)
#define TINYQUANT_HOT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TINYQUANT_HOT_CLONES
#endif
