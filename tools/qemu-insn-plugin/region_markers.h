/* The two marker functions the insn_count plugin counts between in marker mode
 * (-plugin libinsn_count.so,begin=<address of tq_region_begin>,end=<address of tq_region_end>):
 * empty, never inlined, with C names so the harness finds them with nm. A program includes this
 * header once (it defines them) and brackets each counted call with tq_region_begin() and
 * tq_region_end(); an empty pair run first gives the markers' own cost to subtract. */
#ifndef TINYQUANT_REGION_MARKERS_H
#define TINYQUANT_REGION_MARKERS_H

#ifdef __cplusplus
extern "C" {
#endif

__attribute__((noinline)) void tq_region_begin(void) {
  __asm__ volatile("" ::: "memory");
}
__attribute__((noinline)) void tq_region_end(void) {
  __asm__ volatile("" ::: "memory");
}

#ifdef __cplusplus
}
#endif

#endif /* TINYQUANT_REGION_MARKERS_H */
