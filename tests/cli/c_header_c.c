/* Exported headers compiled as C11: they must be valid C, and the arrays usable from C. */
#include "exported.h"
#include "exported_one.h"
#include "grouped_scales.h"
#include "relu_scales.h"
#include "sparse_blk.h"
#include "sparse_bmp.h"
#include "sparse_csr16.h"
#include "sparse_csr8.h"
#include "sparse_nm.h"
#include "tensor_scales.h"

int cli_c_weight_sum(void);
int cli_c_weight_sum(void) {
  int sum = 0;
  int i;
  for (i = 0; i < NET_FC_WEIGHT_NUMEL; ++i) sum += net_fc_weight[i] - one_fc_weight[i];
  /* The float scale macros are float constants in C too. */
  if (RELUS_FC1_INPUT_SCALE != 0.02f || PTS_FC_OUTPUT_SCALE != 0.05f) return -1;
  return sum + (int)(sizeof(one_fc_weight) / sizeof(one_fc_weight[0]));
}
