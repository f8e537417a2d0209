/* ops_amxemu.c - the AMX micro-kernel of ops_amx.c with the tile
 * instructions computed in C (sx_bf16_kernels_amx_emulated), for the tests:
 * it runs the AMX path's layout and driver on any CPU. Not used for work. */
#define SX_AMX_EMULATE 1
#include "ops_amx.c"
