//go:build !darwin && cgo

// The MSL emulator's host side in C: loading kernel shared objects, worker
// fiber stacks, and turning faults in kernel code into errors.

#define _GNU_SOURCE
#include "emu_host.h"

#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

// Set while the current OS thread runs kernel code.
static __thread sigjmp_buf *emu_jmp;
static __thread emu_worker *emu_jmp_worker;

static struct sigaction old_segv, old_bus, old_fpe, old_xcpu;

// The watchdog's signal: SIGXCPU, which the Go runtime ignores unless asked.
#define EMU_STOP_SIGNAL SIGXCPU

static pthread_mutex_t emu_stop_mu = PTHREAD_MUTEX_INITIALIZER;

static void emu_signal(int sig, siginfo_t *si, void *ctx) {
	// A stop request counts only for the dispatch it was meant for.
	int stop = sig != EMU_STOP_SIGNAL || (emu_jmp && emu_jmp_worker->stop == emu_jmp_worker->running);
	if (emu_jmp && stop) {
		emu_jmp_worker->signo = sig;
		emu_jmp_worker->fault_addr = (uintptr_t)si->si_addr;
		siglongjmp(*emu_jmp, 1);
	}
	// Not ours: hand it to the handler that was there before (Go's).
	struct sigaction *old = sig == SIGSEGV ? &old_segv : sig == SIGBUS ? &old_bus : sig == SIGFPE ? &old_fpe : &old_xcpu;
	if (old->sa_flags & SA_SIGINFO) {
		old->sa_sigaction(sig, si, ctx);
	} else if (old->sa_handler != SIG_IGN && old->sa_handler != SIG_DFL) {
		old->sa_handler(sig);
	} else {
		signal(sig, SIG_DFL);
		raise(sig);
	}
}

int emu_install_handlers(void) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = emu_signal;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, &old_segv) || sigaction(SIGBUS, &sa, &old_bus) || sigaction(SIGFPE, &sa, &old_fpe) ||
	    sigaction(EMU_STOP_SIGNAL, &sa, &old_xcpu))
		return -1;
	return 0;
}

emu_worker *emu_worker_new(uint32_t nstacks, uint32_t stack_size) {
	emu_worker *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	long page = sysconf(_SC_PAGESIZE);
	w->nstacks = nstacks;
	w->stack_size = stack_size;
	w->guard_size = (uint32_t)page;
	size_t slot = (size_t)stack_size + page;
	void *m = mmap(NULL, slot * nstacks, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED) {
		free(w);
		return NULL;
	}
	w->stacks = m;
	for (uint32_t i = 0; i < nstacks; i++) {
		if (mprotect(w->stacks + i * slot, page, PROT_NONE)) {
			munmap(m, slot * nstacks);
			free(w);
			return NULL;
		}
	}
	return w;
}

int emu_worker_scratch(emu_worker *w, uint64_t len) {
	if (w->scratch_len >= len)
		return 0;
	free(w->scratch);
	w->scratch = malloc(len + 64);
	w->scratch_len = w->scratch ? len : 0;
	w->race_epoch = 0;
	return w->scratch ? 0 : -1;
}

void emu_worker_free(emu_worker *w) {
	munmap(w->stacks, ((size_t)w->stack_size + w->guard_size) * w->nstacks);
	free(w->scratch);
	free(w);
}

int emu_in_stack_guard(emu_worker *w, uintptr_t addr) {
	uintptr_t base = (uintptr_t)w->stacks;
	size_t slot = (size_t)w->stack_size + w->guard_size;
	if (addr < base || addr >= base + slot * w->nstacks)
		return 0;
	return (addr - base) % slot < w->guard_size;
}

static void emu_set_running(emu_worker *w, emu_dispatch *d) {
	pthread_mutex_lock(&emu_stop_mu);
	w->running = d;
	w->stop = NULL;
	pthread_mutex_unlock(&emu_stop_mu);
}

int emu_exec(void *run, void *where, emu_dispatch *d, emu_worker *w) {
	sigjmp_buf jb;
	w->signo = 0;
	w->have_where = 0;
	w->msg[0] = 0;
	w->host_thread = (uint64_t)pthread_self();
	if (sigsetjmp(jb, 1)) {
		emu_jmp = NULL;
		emu_set_running(w, NULL);
		((emu_where_fn)where)(w);
		__atomic_store_n(&d->failed, 1, __ATOMIC_RELAXED);
		return 2;
	}
	emu_jmp_worker = w;
	emu_set_running(w, d);
	emu_jmp = &jb;
	int rc = ((emu_run_fn)run)(d, w);
	emu_jmp = NULL;
	emu_set_running(w, NULL);
	return rc;
}

void emu_stop(emu_worker *w, emu_dispatch *d) {
	pthread_mutex_lock(&emu_stop_mu);
	if (w->running == d) {
		w->stop = d;
		pthread_kill((pthread_t)w->host_thread, EMU_STOP_SIGNAL);
	}
	pthread_mutex_unlock(&emu_stop_mu);
}

void *emu_dlopen(const char *path, char **err) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		*err = strdup(dlerror());
	return h;
}

uint64_t emu_call_scratch_size(void *f) { return ((emu_scratch_size_fn)f)(); }
