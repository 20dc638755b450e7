// Declarations of emu_host.c for the cgo side of the MSL emulator.
#include "msl/abi.h"

int emu_install_handlers(void);
emu_worker *emu_worker_new(uint32_t nstacks, uint32_t stack_size);
int emu_worker_scratch(emu_worker *w, uint64_t len);
void emu_worker_free(emu_worker *w);
int emu_in_stack_guard(emu_worker *w, uintptr_t addr);
int emu_exec(void *run, void *where, emu_dispatch *d, emu_worker *w);
void emu_stop(emu_worker *w, emu_dispatch *d);
void *emu_dlopen(const char *path, char **err);
uint64_t emu_call_scratch_size(void *f);
