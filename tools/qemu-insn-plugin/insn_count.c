/* insn_count: a QEMU TCG plugin that counts guest instructions executed in a region of code.
 *
 *   -plugin libinsn_count.so,begin=0xADDR,end=0xADDR   (region between two marker functions)
 *   -plugin libinsn_count.so,start=0xADDR,stop=0xADDR  (instructions with address in [start, stop))
 *
 * Marker mode counts every instruction executed from the first instruction of the `begin` marker
 * up to (not including) the first instruction of the `end` marker, callees included: the harness
 * calls begin(), the kernel, end(), and subtracts the count of an empty begin(); end() region. Each
 * begin/end pair is one region; the plugin prints one line per region and a total at exit
 * ("insn_count: region <i> <n>", "insn_count: total <n>"). Single vCPU only (the Cortex-M boards
 * have one). Thumb bit of addresses is ignored. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_api.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t g_begin, g_end, g_start, g_stop;
static int g_marker_mode;
static uint64_t g_executed;     /* inline counter: every instrumented instruction */
static uint64_t g_region_start; /* g_executed when the begin marker ran */
static int g_in_region;
static unsigned g_regions;
static uint64_t g_total;

static void print_line(const char* label, unsigned index, uint64_t n) {
  char text[96];
  snprintf(text, sizeof text, "insn_count: %s %u %" PRIu64 "\n", label, index, n);
  qemu_plugin_outs(text);
}

static void on_begin(unsigned int vcpu, void* userdata) {
  (void)vcpu;
  (void)userdata;
  g_region_start = g_executed;
  g_in_region = 1;
}

static void on_end(unsigned int vcpu, void* userdata) {
  (void)vcpu;
  (void)userdata;
  if (!g_in_region) return;
  /* Both snapshots see the marker's own instruction on the same side of its inline add, so the
   * difference is the number of instructions in [first of begin, first of end). */
  const uint64_t n = g_executed - g_region_start;
  g_in_region = 0;
  g_total += n;
  print_line("region", g_regions++, n);
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
  (void)id;
  const size_t n = qemu_plugin_tb_n_insns(tb);
  for (size_t i = 0; i < n; ++i) {
    struct qemu_plugin_insn* insn = qemu_plugin_tb_get_insn(tb, i);
    const uint64_t pc = qemu_plugin_insn_vaddr(insn) & ~(uint64_t)1;
    if (g_marker_mode) {
      qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &g_executed, 1);
      if (pc == g_begin)
        qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
      else if (pc == g_end)
        qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
    } else if (pc >= g_start && pc < g_stop) {
      qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &g_executed, 1);
    }
  }
}

static void on_atexit(qemu_plugin_id_t id, void* userdata) {
  (void)id;
  (void)userdata;
  print_line("total", g_regions, g_marker_mode ? g_total : g_executed);
}

static int parse_address(const char* arg, const char* key, uint64_t* out) {
  const size_t len = strlen(key);
  if (strncmp(arg, key, len) != 0 || arg[len] != '=') return 0;
  *out = strtoull(arg + len + 1, NULL, 0) & ~(uint64_t)1;
  return 1;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info, int argc,
                                           char** argv) {
  (void)info;
  int have_begin = 0, have_end = 0, have_start = 0, have_stop = 0;
  for (int i = 0; i < argc; ++i) {
    if (parse_address(argv[i], "begin", &g_begin))
      have_begin = 1;
    else if (parse_address(argv[i], "end", &g_end))
      have_end = 1;
    else if (parse_address(argv[i], "start", &g_start))
      have_start = 1;
    else if (parse_address(argv[i], "stop", &g_stop))
      have_stop = 1;
    else {
      fprintf(stderr, "insn_count: unknown argument '%s'\n", argv[i]);
      return -1;
    }
  }
  g_marker_mode = have_begin && have_end;
  if (!g_marker_mode && !(have_start && have_stop)) {
    fprintf(stderr, "insn_count: need begin=,end= or start=,stop=\n");
    return -1;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
  qemu_plugin_register_atexit_cb(id, on_atexit, NULL);
  return 0;
}
