// The interface between the MSL emulator's host side (package metal) and the
// kernel shared objects built from MSL source with shim.h. Both sides are
// compiled from this one header; the layout is part of the shim's version.

#ifndef EMU_ABI_H
#define EMU_ABI_H

#include <stdint.h>

#define EMU_MAX_BUFFERS 31           // [[buffer(n)]] and [[threadgroup(n)]] indices
#define EMU_MAX_THREADS 1024         // threads per threadgroup
#define EMU_TG_LIMIT 32768           // threadgroup memory per group, bytes
#define EMU_MSG_LEN 1024
#define EMU_RACE_GRAIN 2             // bytes of memory per race-detector shadow entry

// emu_wbuf is a buffer a dispatch may write, for the race detector: base is
// the buffer's start (not the bound offset), shadow has one entry per
// EMU_RACE_GRAIN bytes holding (dispatch serial << 32 | threadgroup + 1) of
// the last write.
typedef struct emu_wbuf {
	char *base;
	uint64_t len;
	uint64_t *shadow;
	uint32_t index; // [[buffer(index)]]
} emu_wbuf;

// emu_dispatch is one dispatch of one kernel: what the host binds, plus the
// counters the workers share.
typedef struct emu_dispatch {
	void (*entry)(void);              // the kernel's generated entry point
	void *buf[EMU_MAX_BUFFERS];       // [[buffer(n)]]: buffer contents + offset, or set-bytes copies
	uint32_t tg_len[EMU_MAX_BUFFERS]; // [[threadgroup(n)]] lengths in bytes
	uint32_t groups[3];               // threadgroups per grid
	uint32_t threads[3];              // threads per threadgroup
	uint32_t next;                    // next threadgroup to run (atomic)
	int32_t failed;                   // set once any worker fails (atomic)
	// The race detector, in libraries built with it: on when race is set.
	uint32_t race;
	uint32_t serial; // distinct for every dispatch of the process, never 0
	uint32_t nwbuf;
	emu_wbuf wbuf[EMU_MAX_BUFFERS];
} emu_dispatch;

// emu_worker is the state one OS thread runs threadgroups with. The host
// allocates it and its fiber stacks; the kernel side uses scratch for
// everything else (thread records, SIMD groups, threadgroup memory).
typedef struct emu_worker {
	char *stacks;        // nstacks stacks of stack_size bytes, each above a guard page
	uint32_t nstacks;
	uint32_t stack_size; // usable bytes per stack (the guard page is extra)
	uint32_t guard_size;
	void *scratch;
	uint64_t scratch_len;
	// The race detector's threadgroup epoch, kept in scratch's shadow
	// entries; 0 says they are not initialised (new scratch).
	uint32_t race_epoch;

	// Set by the kernel side when it reports an error.
	char msg[EMU_MSG_LEN];
	// Set by the host when a kernel thread faults.
	int signo;
	uintptr_t fault_addr;
	// Where the failing thread was: threadgroup and thread position, valid
	// when have_where is set.
	int have_where;
	uint32_t where_group[3];
	uint32_t where_thread[3];

	// Host only: which OS thread runs which dispatch, for the watchdog.
	uint64_t host_thread;
	emu_dispatch *running; // the dispatch being run, or NULL
	emu_dispatch *stop;    // a dispatch the watchdog stops
} emu_worker;

// Exported by every kernel shared object.
typedef uint64_t (*emu_scratch_size_fn)(void);
// emu_run runs threadgroups of d until none is left or d->failed is set.
// It returns 0, or 1 with w->msg set.
typedef int (*emu_run_fn)(emu_dispatch *d, emu_worker *w);
// emu_where fills w's where fields from the thread that ran last.
typedef void (*emu_where_fn)(emu_worker *w);

#endif
