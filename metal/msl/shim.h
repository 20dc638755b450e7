// shim.h: the Metal standard library subset the MSL emulator supports, and
// the runtime that executes kernels with Metal's threadgroup semantics.
//
// Kernel source, after the rewriter (rewrite.go) has dealt with what clang
// cannot parse, is compiled as C++17 with this header force-included and
// linked into a shared object. SUBSET.md lists what kernels may use.
//
// Execution: every thread of a threadgroup is a fiber on the worker's OS
// thread. A fiber runs until it waits at a barrier or a SIMD-group operation,
// or returns. A barrier releases when every thread of the group waits at the
// same barrier call site; anything else is reported as divergence. SIMD-group
// operations exchange values among the lanes of a 32-lane SIMD group that are
// active (not returned, not waiting elsewhere). simdgroup_matrix values live
// in per-SIMD-group storage and each matrix operation is computed once per
// SIMD group, by whichever lane reaches it first.

#ifndef EMU_SHIM_H
#define EMU_SHIM_H

#include "abi.h"

// ---- Address spaces and function qualifiers ------------------------------

// Device and threadgroup memory are address spaces of their own, as in
// Metal: a thread pointer does not convert to either. The race detector
// (instrument.go) finds their loads and stores by address space.
#define device __attribute__((address_space(1)))
#define constant
#define threadgroup __attribute__((address_space(3)))
#define thread
#define kernel
#define METAL_FUNC inline __attribute__((always_inline))

// ---- Scalar and vector types ---------------------------------------------

typedef _Float16 half;
#include "vectypes.h"

constexpr half operator""h(long double v) { return (half)v; }

namespace __emu {

template <class T> struct vinfo {
	typedef T elem;
	static constexpr int n = 1;
	static constexpr bool vec = false;
};
template <class T, int N> struct vinfo<T __attribute__((ext_vector_type(N)))> {
	typedef T elem;
	static constexpr int n = N;
	static constexpr bool vec = true;
};
template <bool B, class T = void> struct enable_if {};
template <class T> struct enable_if<true, T> {
	typedef T type;
};
// vec_t<V> is V when V is a vector type; it removes vector overloads of the
// math functions from scalar calls.
template <class V> using vec_t = typename enable_if<vinfo<V>::vec, V>::type;

template <class E, class A> inline void put(E *out, int &i, A a) {
	if constexpr (vinfo<A>::vec) {
		for (int j = 0; j < vinfo<A>::n; j++)
			out[i++] = (E)a[j];
	} else {
		out[i++] = (E)a;
	}
}

template <class V, class A> inline V splat(A a) { return V((typename vinfo<V>::elem)a); }

// make builds a vector from scalars and vectors, as Metal's vector
// constructors do: one scalar splats, otherwise the components are
// concatenated and must add up to the vector's size.
template <class V, class... A> inline V make(A... a) {
	typedef typename vinfo<V>::elem E;
	constexpr int N = vinfo<V>::n;
	if constexpr (sizeof...(A) == 0) {
		return V(E(0));
	} else if constexpr (sizeof...(A) == 1 && !(vinfo<A>::vec && ...)) {
		return splat<V>(a...);
	} else {
		static_assert(((int)vinfo<A>::n + ...) == N, "vector constructor: wrong number of components");
		E e[N];
		int i = 0;
		(put(e, i, a), ...);
		V v;
		for (int j = 0; j < N; j++)
			v[j] = e[j];
		return v;
	}
}

} // namespace __emu

// A vector constructor such as float4(v.xy, z, 1) expands to a call of make.
#define float2(...) ::__emu::make<::float2>(__VA_ARGS__)
#define float3(...) ::__emu::make<::float3>(__VA_ARGS__)
#define float4(...) ::__emu::make<::float4>(__VA_ARGS__)
#define half2(...) ::__emu::make<::half2>(__VA_ARGS__)
#define half3(...) ::__emu::make<::half3>(__VA_ARGS__)
#define half4(...) ::__emu::make<::half4>(__VA_ARGS__)
#define int2(...) ::__emu::make<::int2>(__VA_ARGS__)
#define int3(...) ::__emu::make<::int3>(__VA_ARGS__)
#define int4(...) ::__emu::make<::int4>(__VA_ARGS__)
#define uint2(...) ::__emu::make<::uint2>(__VA_ARGS__)
#define uint3(...) ::__emu::make<::uint3>(__VA_ARGS__)
#define uint4(...) ::__emu::make<::uint4>(__VA_ARGS__)
#define short2(...) ::__emu::make<::short2>(__VA_ARGS__)
#define short4(...) ::__emu::make<::short4>(__VA_ARGS__)
#define ushort2(...) ::__emu::make<::ushort2>(__VA_ARGS__)
#define ushort3(...) ::__emu::make<::ushort3>(__VA_ARGS__)
#define ushort4(...) ::__emu::make<::ushort4>(__VA_ARGS__)
#define uchar4(...) ::__emu::make<::uchar4>(__VA_ARGS__)
#define ulong2(...) ::__emu::make<::ulong2>(__VA_ARGS__)

#define INFINITY __builtin_inff()
#define NAN __builtin_nanf("")
#define FLT_MAX 0x1.fffffep+127f
#define FLT_MIN 0x1p-126f
#define FLT_EPSILON 0x1p-23f
#define HALF_MAX ((half)65504.0f)
#define M_PI_F 3.14159265358979323846f
#define M_SQRT2_F 1.41421356237309504880f
#define M_LN2_F 0.69314718055994530942f
#define M_LOG2E_F 1.44269504088896340736f

// ---- The runtime ----------------------------------------------------------

namespace __emu {

enum { RUN, AT_BARRIER, AT_SIMD, DONE };
enum { MAT_SLOTS = 64 };

struct Site {
	const char *file;
	unsigned line, col;
	bool operator==(const Site &o) const { return line == o.line && col == o.col && file == o.file; }
	bool operator!=(const Site &o) const { return !(*this == o); }
};

struct Thread {
	void *sp;
	int stack;     // index of its fiber stack, -1 while it has none
	unsigned state;
	unsigned lid, lane, sg;
	uint3 pos;     // thread_position_in_threadgroup
	Site site;     // where it waits
	unsigned flags;
	struct Simd *simd;       // its SIMD group
	unsigned matops;         // simdgroup-matrix operations done by this lane
	unsigned long long mats; // simdgroup-matrix slots in use by this lane
};

struct alignas(64) Simd {
	unsigned nlive, narrived;
	unsigned arrived; // lane mask
	bool mixed;       // arrived lanes wait at different sites
	Site site;
	unsigned outmask;
	unsigned matdone;
	alignas(16) unsigned char in[32][16];
	alignas(16) unsigned char out[32][16];
	alignas(32) float mat[MAT_SLOTS][64];
};

enum { MAX_TG_DECLS = 64, TG_GUARD = 32 };
// TG_SPACE is the most threadgroup memory a group uses, guard bytes included.
enum { TG_SPACE = EMU_TG_LIMIT + (MAX_TG_DECLS + EMU_MAX_BUFFERS) * (TG_GUARD + 16) };

// Shadow is the race detector's record of EMU_RACE_GRAIN bytes of
// threadgroup memory: the epoch (barrier interval) and thread of the last
// write, and of the reads in the read epoch, a first reader and a reader of
// another SIMD group (NO_THREAD if none).
struct Shadow {
	unsigned wep, rep;
	unsigned short wlid, rlid, r2lid, pad;
};
enum { NO_THREAD = 0xffff };
enum { MEM_THREADGROUP = 2 }; // metal::mem_flags::mem_threadgroup

struct Group {
	emu_dispatch *d;
	emu_worker *w;
	void *sched_sp;
	Thread *threads;
	Simd *simds;
	unsigned nthreads, nsimd, live, at_barrier;
	uint3 gpos, tpg, ngroups;
	bool failed;
	char *tg;          // threadgroup memory of this group
	unsigned tg_used;  // bytes allocated: [[threadgroup(n)]] arguments, then declarations
	unsigned tg_bytes; // of those, the bytes Metal counts (no guard bytes)
	// Guard bytes after every threadgroup allocation, still 0xFF at the end
	// of the group unless a thread wrote past the allocation.
	struct {
		unsigned start, off; // the allocation's first byte, and its end
		int arg;          // [[threadgroup(arg)]], or -1 for a declaration
		const char *what; // the declaration
	} guards[MAX_TG_DECLS + EMU_MAX_BUFFERS];
	unsigned nguards;
	void *tg_arg[EMU_MAX_BUFFERS];
	int tg_decl[MAX_TG_DECLS]; // offset of each in-kernel declaration, -1 until reached
	// Fiber stacks not in use, the most recently freed (cache-hot) last. A
	// thread gets one when it starts and gives it back when it returns, so
	// a kernel without barriers runs every thread on the same stack.
	int free_stacks[EMU_MAX_THREADS];
	unsigned nfree;
	Thread *done; // a thread that returned, whose stack is still to be freed
	unsigned index; // the threadgroup's linear index in the grid
	Shadow *shadow; // the race detector's, one per EMU_RACE_GRAIN bytes of tg
};

extern "C" void __emu_swap(void **save, void *load);

// The running thread and its group, per worker. Dynamic TLS (through TLS
// descriptors where the target has them) rather than initial-exec: glibc
// reserves only a little static TLS for dlopen'ed objects, and every kernel
// library loaded would keep using it up.
static __thread Thread *cur;
static __thread Group *grp;

void *fiber_stack(char *top);

// to_sched leaves the current fiber for the scheduler.
static inline void to_sched() { __emu_swap(&cur->sp, grp->sched_sp); }

// give_stack gives thread t, which has not started, a fiber stack.
static inline void give_stack(Group *g, Thread *t) {
	t->stack = g->free_stacks[--g->nfree];
	size_t slot = (size_t)g->w->stack_size + g->w->guard_size;
	t->sp = fiber_stack(g->w->stacks + t->stack * slot + slot);
}

// block suspends the current fiber and passes control straight to the next
// runnable thread of the group, or to the scheduler when there is none
// after it: one context switch per hand-over instead of two.
static inline void block() {
	Group *g = grp;
	Thread *t = cur;
	for (unsigned j = t->lid + 1; j < g->nthreads; j++) {
		Thread *n = &g->threads[j];
		if (n->state != RUN)
			continue;
		if (n->stack < 0)
			give_stack(g, n);
		cur = n;
		__emu_swap(&t->sp, n->sp);
		return;
	}
	to_sched();
}

// fail records an error for the dispatch and leaves the fiber for good.
[[noreturn]] static void fail_msg() {
	grp->failed = true;
	__atomic_store_n(&grp->d->failed, 1, __ATOMIC_RELAXED);
	grp->w->have_where = 1;
	for (int i = 0; i < 3; i++) {
		grp->w->where_group[i] = grp->gpos[i];
		grp->w->where_thread[i] = cur->pos[i];
	}
	for (;;)
		to_sched();
}

} // namespace __emu

// The shim uses no C++ library, only these C functions.
extern "C" int snprintf(char *, size_t, const char *, ...);
extern "C" void *memset(void *, int, size_t);
extern "C" void *memcpy(void *, const void *, size_t);

#define EMU_FAIL(...)                                                           \
	do {                                                                    \
		snprintf(::__emu::grp->w->msg, EMU_MSG_LEN, __VA_ARGS__);       \
		::__emu::fail_msg();                                            \
	} while (0)

namespace __emu {

// new_epoch starts a new interval for the race detector: accesses in
// different epochs are ordered by a barrier.
static void new_epoch(Group *g) {
	if (!g->d->race)
		return;
	unsigned e = g->w->race_epoch + 1;
	if (e == 1 || e == 0) { // new scratch, or the epoch wrapped round
		memset(g->shadow, 0, sizeof(Shadow) * (TG_SPACE / EMU_RACE_GRAIN));
		e = 1;
	}
	g->w->race_epoch = e;
}

// barrier makes the calling thread wait until every thread of the group
// waits at the same call site.
static void barrier(unsigned flags, Site s, const char *what) {
	Group *g = grp;
	Thread *t = cur;
	t->state = AT_BARRIER;
	t->site = s;
	t->flags = flags;
	if (++g->at_barrier < g->live) {
		block();
		return;
	}
	// Every live thread waits at a barrier: the last to arrive checks and releases.
	for (unsigned i = 0; i < g->nthreads; i++) {
		Thread *o = &g->threads[i];
		if (o->state == DONE)
			EMU_FAIL("barrier divergence: thread (%u,%u,%u) returned while thread (%u,%u,%u) waits at %s at %s:%u",
			         o->pos.x, o->pos.y, o->pos.z, t->pos.x, t->pos.y, t->pos.z, what, s.file, s.line);
		if (o->site != s)
			EMU_FAIL("barrier divergence: thread (%u,%u,%u) waits at %s:%u while thread (%u,%u,%u) waits at %s:%u",
			         o->pos.x, o->pos.y, o->pos.z, o->site.file, o->site.line, t->pos.x, t->pos.y, t->pos.z, s.file, s.line);
		if (o->flags != flags)
			EMU_FAIL("barrier at %s:%u called with different memory flags by threads (%u,%u,%u) and (%u,%u,%u)",
			         s.file, s.line, o->pos.x, o->pos.y, o->pos.z, t->pos.x, t->pos.y, t->pos.z);
		o->state = RUN;
	}
	g->at_barrier = 0;
	// A barrier that orders threadgroup memory starts a new epoch for the
	// race detector.
	if (flags & MEM_THREADGROUP)
		new_epoch(g);
}

static inline void publish(Simd *s) {
	for (unsigned m = s->arrived; m; m &= m - 1) {
		unsigned l = __builtin_ctz(m);
		memcpy(s->out[l], s->in[l], 16);
		grp->threads[cur->sg * 32 + l].state = RUN;
	}
	s->outmask = s->arrived;
	s->arrived = 0;
	s->narrived = 0;
	s->mixed = false;
}

// exchange deposits v for the active lanes of the caller's SIMD group and
// returns once all of them have; their values are then in out[lane].
template <class T> static inline Simd *exchange(T v, Site site) {
	static_assert(sizeof(T) <= 16, "SIMD-group value too large");
	Thread *t = cur;
	Simd *s = &grp->simds[t->sg];
	memcpy(s->in[t->lane], &v, sizeof(T));
	if (s->narrived == 0)
		s->site = site;
	else if (s->site != site)
		s->mixed = true;
	t->state = AT_SIMD;
	t->site = site;
	s->arrived |= 1u << t->lane;
	if (++s->narrived == s->nlive && !s->mixed) {
		publish(s);
		return s;
	}
	block();
	return s;
}

// complete_partial completes, for a SIMD group with waiting lanes and no
// runnable ones, the exchange of the lowest waiting lane's call site.
static bool complete_partial(Simd *s, unsigned sg) {
	if (!s->narrived)
		return false;
	Thread *base = &grp->threads[sg * 32];
	Site site = base[__builtin_ctz(s->arrived)].site;
	unsigned keep = 0, n = 0;
	for (unsigned m = s->arrived; m; m &= m - 1) {
		unsigned l = __builtin_ctz(m);
		if (base[l].site != site)
			keep |= 1u << l, n++;
	}
	s->arrived &= ~keep;
	Thread *saved = cur;
	cur = &base[__builtin_ctz(s->arrived)];
	publish(s);
	cur = saved;
	s->arrived = keep;
	s->narrived = n;
	s->mixed = false;
	if (n)
		s->site = base[__builtin_ctz(keep)].site;
	for (unsigned m = keep; m; m &= m - 1)
		s->mixed |= base[__builtin_ctz(m)].site != s->site;
	return true;
}

} // namespace __emu

extern "C" void __emu_fiber_start(void) {
	using namespace __emu;
	for (;;) {
		grp->d->entry();
		Thread *t = cur;
		Group *g = grp;
		t->state = DONE;
		g->live--;
		g->simds[t->sg].nlive--;
		// A returned thread may complete what the others wait for.
		Simd *s = &g->simds[t->sg];
		if (s->narrived && s->narrived == s->nlive && !s->mixed)
			publish(s);
		if (g->live && g->at_barrier == g->live) {
			for (unsigned i = 0; i < g->nthreads; i++) {
				Thread *o = &g->threads[i];
				if (o->state == AT_BARRIER)
					EMU_FAIL("barrier divergence: thread (%u,%u,%u) returned while thread (%u,%u,%u) waits at threadgroup_barrier at %s:%u",
					         t->pos.x, t->pos.y, t->pos.z, o->pos.x, o->pos.y, o->pos.z, o->site.file, o->site.line);
			}
		}
		// The next thread, if it has not started, runs on this stack
		// straight away: no context switch for threads that never wait.
		if (t->lid + 1 < g->nthreads) {
			Thread *n = &g->threads[t->lid + 1];
			if (n->state == RUN && n->stack < 0) {
				n->stack = t->stack;
				t->stack = -1;
				cur = n;
				continue;
			}
		}
		// The scheduler takes the stack back: this fiber is still on it.
		g->done = t;
		for (;;)
			to_sched();
	}
}

#if defined(__x86_64__)
__asm__(".text\n"
        ".globl __emu_swap\n"
        ".hidden __emu_swap\n"
        ".type __emu_swap,@function\n"
        "__emu_swap:\n"
        "	pushq %rbp\n"
        "	pushq %rbx\n"
        "	pushq %r12\n"
        "	pushq %r13\n"
        "	pushq %r14\n"
        "	pushq %r15\n"
        "	movq %rsp, (%rdi)\n"
        "	movq %rsi, %rsp\n"
        "	popq %r15\n"
        "	popq %r14\n"
        "	popq %r13\n"
        "	popq %r12\n"
        "	popq %rbx\n"
        "	popq %rbp\n"
        "	ret\n"
        ".size __emu_swap, .-__emu_swap\n");
// fiber_stack prepares a stack whose first switch enters __emu_fiber_start.
void *__emu::fiber_stack(char *top) {
	void **sp = (void **)top;
	*--sp = 0;                          // return address of __emu_fiber_start (never used)
	*--sp = (void *)__emu_fiber_start; // popped by ret
	for (int i = 0; i < 6; i++)
		*--sp = 0; // rbp rbx r12-r15
	return sp;
}
#elif defined(__aarch64__)
// Not run by the test suite (CI has no arm64 machine); context-switch round
// trips were checked under qemu-aarch64.
__asm__(".text\n"
        ".globl __emu_swap\n"
        ".hidden __emu_swap\n"
        ".type __emu_swap,%function\n"
        "__emu_swap:\n"
        "	sub sp, sp, #160\n"
        "	stp x19, x20, [sp, #0]\n"
        "	stp x21, x22, [sp, #16]\n"
        "	stp x23, x24, [sp, #32]\n"
        "	stp x25, x26, [sp, #48]\n"
        "	stp x27, x28, [sp, #64]\n"
        "	stp x29, x30, [sp, #80]\n"
        "	stp d8, d9, [sp, #96]\n"
        "	stp d10, d11, [sp, #112]\n"
        "	stp d12, d13, [sp, #128]\n"
        "	stp d14, d15, [sp, #144]\n"
        "	mov x2, sp\n"
        "	str x2, [x0]\n"
        "	mov sp, x1\n"
        "	ldp x19, x20, [sp, #0]\n"
        "	ldp x21, x22, [sp, #16]\n"
        "	ldp x23, x24, [sp, #32]\n"
        "	ldp x25, x26, [sp, #48]\n"
        "	ldp x27, x28, [sp, #64]\n"
        "	ldp x29, x30, [sp, #80]\n"
        "	ldp d8, d9, [sp, #96]\n"
        "	ldp d10, d11, [sp, #112]\n"
        "	ldp d12, d13, [sp, #128]\n"
        "	ldp d14, d15, [sp, #144]\n"
        "	add sp, sp, #160\n"
        "	ret\n"
        ".size __emu_swap, .-__emu_swap\n");
void *__emu::fiber_stack(char *top) {
	void **sp = (void **)(top - 160);
	for (int i = 0; i < 20; i++)
		sp[i] = 0;
	sp[11] = (void *)__emu_fiber_start; // x30
	return sp;
}
#else
#error "the MSL emulator's fibers support x86-64 and arm64 only"
#endif

namespace __emu {

static uint64_t scratch_size() {
	return sizeof(Group) + sizeof(Thread) * EMU_MAX_THREADS + sizeof(Simd) * (EMU_MAX_THREADS / 32) + TG_SPACE +
	       sizeof(Shadow) * (TG_SPACE / EMU_RACE_GRAIN) + 256;
}

// check_matrix_uniform reports lanes of one SIMD group that performed
// different numbers of simdgroup-matrix operations: Metal requires all of
// them to perform each one, and the emulator computes each once, for all.
static int check_matrix_uniform(Group *g) {
	for (unsigned i = 1; i < g->nthreads; i++) {
		Thread *a = &g->threads[i - 1], *b = &g->threads[i];
		if (a->sg != b->sg || a->matops == b->matops)
			continue;
		snprintf(g->w->msg, EMU_MSG_LEN,
		         "simdgroup-matrix operations in divergent control flow: lanes %u and %u of SIMD group %u performed %u and %u of them",
		         a->lane, b->lane, a->sg, a->matops, b->matops);
		g->w->have_where = 1;
		for (int k = 0; k < 3; k++) {
			g->w->where_group[k] = g->gpos[k];
			g->w->where_thread[k] = b->pos[k];
		}
		return 1;
	}
	return 0;
}

// check_tg_guards reports threadgroup memory written past an allocation.
static int check_tg_guards(Group *g) {
	for (unsigned i = 0; i < g->nguards; i++) {
		const unsigned char *b = (const unsigned char *)g->tg + g->guards[i].off;
		unsigned k = 0;
		while (k < TG_GUARD && b[k] == 0xff)
			k++;
		if (k == TG_GUARD)
			continue;
		if (g->guards[i].arg >= 0)
			snprintf(g->w->msg, EMU_MSG_LEN, "[[threadgroup(%d)]] memory written past its end (at byte %u after it)", g->guards[i].arg, k);
		else
			snprintf(g->w->msg, EMU_MSG_LEN, "threadgroup array %s written past its end (at byte %u after it)", g->guards[i].what, k);
		g->w->have_where = 0;
		return 1;
	}
	return 0;
}

static int run_group(Group *g, uint32_t index) {
	emu_dispatch *d = g->d;
	g->gpos = uint3(index % d->groups[0], index / d->groups[0] % d->groups[1], index / (d->groups[0] * d->groups[1]));
	g->index = index;
	g->live = g->nthreads;
	g->at_barrier = 0;
	new_epoch(g);
	memset(g->tg, 0xff, g->tg_used); // uninitialised threadgroup memory reads as NaN
	for (unsigned i = 0; i < g->nsimd; i++) {
		Simd *s = &g->simds[i];
		s->nlive = i + 1 < g->nsimd ? 32 : g->nthreads - 32 * i;
		s->narrived = s->arrived = 0;
		s->mixed = false;
		s->matdone = 0;
	}
	for (unsigned i = 0; i < g->nthreads; i++) {
		Thread *t = &g->threads[i];
		t->state = RUN;
		t->matops = 0;
		t->mats = 0;
		t->stack = -1;
	}
	for (;;) {
		bool ran = false;
		for (unsigned i = 0; i < g->nthreads; i++) {
			Thread *t = &g->threads[i];
			if (t->state != RUN)
				continue;
			ran = true;
			if (t->stack < 0)
				give_stack(g, t);
			cur = t;
			__emu_swap(&g->sched_sp, t->sp);
			if (g->failed)
				return 1;
			if (Thread *d = g->done) {
				g->free_stacks[g->nfree++] = d->stack;
				d->stack = -1;
				g->done = 0;
			}
		}
		if (g->live == 0)
			return check_matrix_uniform(g) || check_tg_guards(g);
		if (ran)
			continue;
		// Nothing can run: complete SIMD-group operations of partly active groups.
		bool done = false;
		for (unsigned i = 0; i < g->nsimd; i++)
			done |= complete_partial(&g->simds[i], i);
		if (done)
			continue;
		// Only a divergent barrier can be left.
		Thread *a = 0;
		for (unsigned i = 0; i < g->nthreads; i++) {
			Thread *t = &g->threads[i];
			if (t->state != AT_BARRIER)
				continue;
			if (!a) {
				a = t;
				continue;
			}
			cur = t;
			snprintf(g->w->msg, EMU_MSG_LEN, "barrier divergence: thread (%u,%u,%u) waits at %s:%u while thread (%u,%u,%u) waits at %s:%u",
			         a->pos.x, a->pos.y, a->pos.z, a->site.file, a->site.line, t->pos.x, t->pos.y, t->pos.z, t->site.file, t->site.line);
			goto fail;
		}
		snprintf(g->w->msg, EMU_MSG_LEN, "threadgroup deadlocked (%u threads waiting)", g->live);
	fail:
		g->w->have_where = 1;
		for (int k = 0; k < 3; k++) {
			g->w->where_group[k] = g->gpos[k];
			g->w->where_thread[k] = a ? a->pos[k] : 0;
		}
		return 1;
	}
}

} // namespace __emu

extern "C" __attribute__((visibility("default"))) uint64_t __emu_scratch_size(void) { return __emu::scratch_size(); }

extern "C" __attribute__((visibility("default"))) void __emu_where(emu_worker *w) {
	using namespace __emu;
	if (!grp || !cur)
		return;
	w->have_where = 1;
	for (int i = 0; i < 3; i++) {
		w->where_group[i] = grp->gpos[i];
		w->where_thread[i] = cur->pos[i];
	}
}

extern "C" __attribute__((visibility("default"))) int __emu_run(emu_dispatch *d, emu_worker *w) {
	using namespace __emu;
	char *p = (char *)(((uintptr_t)w->scratch + 63) & ~(uintptr_t)63);
	Group *g = (Group *)p;
	p += sizeof(Group);
	g->threads = (Thread *)p;
	p += sizeof(Thread) * EMU_MAX_THREADS;
	p = (char *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
	g->simds = (Simd *)p;
	p += sizeof(Simd) * (EMU_MAX_THREADS / 32);
	g->tg = p;
	p += TG_SPACE;
	p = (char *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
	g->shadow = (Shadow *)p;
	g->d = d;
	g->w = w;
	g->failed = false;
	g->tpg = uint3(d->threads[0], d->threads[1], d->threads[2]);
	g->ngroups = uint3(d->groups[0], d->groups[1], d->groups[2]);
	g->nthreads = d->threads[0] * d->threads[1] * d->threads[2];
	g->nsimd = (g->nthreads + 31) / 32;
	g->tg_used = 0;
	g->tg_bytes = 0;
	g->nguards = 0;
	for (int i = 0; i < EMU_MAX_BUFFERS; i++) {
		g->tg_arg[i] = 0;
		if (d->tg_len[i]) {
			g->tg_arg[i] = g->tg + g->tg_used;
			g->tg_bytes += (d->tg_len[i] + 15) & ~15u;
			g->guards[g->nguards].start = g->tg_used;
			g->guards[g->nguards].off = g->tg_used + d->tg_len[i];
			g->guards[g->nguards].arg = i;
			g->nguards++;
			g->tg_used = (g->tg_used + d->tg_len[i] + TG_GUARD + 15) & ~15u;
		}
	}
	for (int i = 0; i < MAX_TG_DECLS; i++)
		g->tg_decl[i] = -1;
	for (unsigned i = 0; i < g->nthreads; i++) {
		Thread *t = &g->threads[i];
		t->lid = i;
		t->lane = i % 32;
		t->sg = i / 32;
		t->simd = &g->simds[t->sg];
		t->pos = uint3(i % d->threads[0], i / d->threads[0] % d->threads[1], i / (d->threads[0] * d->threads[1]));
	}
	g->nfree = 0;
	g->done = 0;
	for (int i = (int)g->nthreads - 1; i >= 0; i--)
		g->free_stacks[g->nfree++] = i;
	grp = g;
	cur = 0;
	uint32_t total = d->groups[0] * d->groups[1] * d->groups[2];
	for (;;) {
		if (__atomic_load_n(&d->failed, __ATOMIC_RELAXED))
			return 0;
		uint32_t i = __atomic_fetch_add(&d->next, 1, __ATOMIC_RELAXED);
		if (i >= total)
			return 0;
		if (run_group(g, i))
			return 1;
	}
}

// ---- Positions and arguments for the generated entry points -----------------

namespace __emu {

template <class T> inline T pos(uint3 v) {
	if constexpr (vinfo<T>::n == 1)
		return (T)v.x;
	else if constexpr (vinfo<T>::n == 2)
		return make<T>(v.x, v.y);
	else
		return make<T>(v.x, v.y, v.z);
}
inline uint3 grid_pos() { return grp->gpos * grp->tpg + cur->pos; }
inline void *buffer(int i) { return grp->d->buf[i]; }
inline void *tg_arg(int i) { return grp->tg_arg[i]; }

} // namespace __emu

// __emu_tg_alloc returns the storage of in-kernel threadgroup declaration id
// for the current threadgroup; what names it in errors.
inline void *__emu_tg_alloc(int id, unsigned size, unsigned align, const char *what) {
	using namespace __emu;
	Group *g = grp;
	if (g->tg_decl[id] < 0) {
		unsigned off = (g->tg_used + align - 1) & ~(align - 1);
		if (g->tg_bytes + size > EMU_TG_LIMIT)
			EMU_FAIL("threadgroup memory exceeds %d bytes (%u requested)", EMU_TG_LIMIT, g->tg_bytes + size);
		memset(g->tg + g->tg_used, 0xff, off + size + TG_GUARD - g->tg_used);
		g->tg_decl[id] = off;
		g->tg_bytes += size;
		g->guards[g->nguards].start = off;
		g->guards[g->nguards].off = off + size;
		g->guards[g->nguards].arg = -1;
		g->guards[g->nguards].what = what;
		g->nguards++;
		g->tg_used = off + size + TG_GUARD;
	}
	return g->tg + g->tg_decl[id];
}


// ---- The race detector ----------------------------------------------------
//
// Libraries built with the detector call these hooks before every load and
// store through a threadgroup pointer and every store through a device
// pointer (instrument.go inserts the calls). Atomics are not instrumented.
//
// Threadgroup memory: two accesses race when they are in the same epoch (no
// barrier ordering threadgroup memory between them), at least one writes,
// and they come from different SIMD groups. Lanes of one SIMD group execute
// in lockstep, so their accesses to each other's data need no barrier; the
// emulator performs a simdgroup_load or simdgroup_store once per SIMD group,
// which the detector sees as one of its lanes.
//
// Device memory: two stores by different threadgroups of one dispatch to
// the same bytes race.

namespace __emu {

// tg_name describes the threadgroup allocation holding byte off.
static void tg_name(Group *g, unsigned off, char *out, size_t n) {
	for (unsigned i = 0; i < g->nguards; i++) {
		if (off < g->guards[i].start || off >= g->guards[i].off + TG_GUARD)
			continue;
		if (g->guards[i].arg >= 0)
			snprintf(out, n, "[[threadgroup(%d)]] memory, byte %u", g->guards[i].arg, off - g->guards[i].start);
		else
			snprintf(out, n, "threadgroup array %s, byte %u", g->guards[i].what, off - g->guards[i].start);
		return;
	}
	snprintf(out, n, "threadgroup memory byte %u", off);
}

[[noreturn]] __attribute__((noinline, cold)) static void tg_race(unsigned off, unsigned other, bool other_wrote, bool wrote) {
	Group *g = grp;
	char name[256];
	tg_name(g, off, name, sizeof name);
	Thread *o = &g->threads[other];
	EMU_FAIL("data race on %s: thread %u (%u,%u,%u; SIMD group %u) %s it and thread %u (%u,%u,%u; SIMD group %u) %s it "
	         "with no threadgroup_barrier(mem_threadgroup) between, in threadgroup (%u,%u,%u)",
	         name, o->lid, o->pos.x, o->pos.y, o->pos.z, o->sg, other_wrote ? "wrote" : "read", cur->lid, cur->pos.x, cur->pos.y,
	         cur->pos.z, cur->sg, wrote ? "wrote" : "read", g->gpos.x, g->gpos.y, g->gpos.z);
}

__attribute__((always_inline)) inline void tg_access(const char *p, uint64_t n, bool write) {
	Group *g = grp;
	if (!g->d->race)
		return;
	Thread *t = cur;
	unsigned ep = g->w->race_epoch, sg = t->sg;
	uintptr_t off = (uintptr_t)(p - g->tg);
	if (off + n > TG_SPACE)
		return; // not threadgroup memory of this group: it faults or hits a guard
	Shadow *sh = g->shadow + off / EMU_RACE_GRAIN, *end = g->shadow + (off + n + EMU_RACE_GRAIN - 1) / EMU_RACE_GRAIN;
	for (; sh < end; sh++) {
		if (sh->wep == ep && sh->wlid / 32 != sg)
			tg_race((unsigned)(sh - g->shadow) * EMU_RACE_GRAIN, sh->wlid, true, write);
		if (write) {
			if (sh->rep == ep && (sh->rlid / 32 != sg || sh->r2lid != NO_THREAD))
				tg_race((unsigned)(sh - g->shadow) * EMU_RACE_GRAIN, sh->rlid / 32 != sg ? sh->rlid : sh->r2lid, false, true);
			sh->wep = ep;
			sh->wlid = t->lid;
		} else if (sh->rep != ep) {
			sh->rep = ep;
			sh->rlid = t->lid;
			sh->r2lid = NO_THREAD;
		} else if (sh->r2lid == NO_THREAD && sh->rlid / 32 != sg) {
			sh->r2lid = t->lid;
		}
	}
}

[[noreturn]] __attribute__((noinline, cold)) static void dev_race(const emu_wbuf *b, uint64_t off, uint32_t other) {
	Group *g = grp;
	emu_dispatch *d = g->d;
	uint32_t o = other - 1, gx = d->groups[0], gy = d->groups[1];
	EMU_FAIL("data race on device memory: threadgroups (%u,%u,%u) and (%u,%u,%u) both wrote byte %llu of the buffer bound to "
	         "[[buffer(%u)]] in one dispatch",
	         o % gx, o / gx % gy, o / (gx * gy), g->gpos.x, g->gpos.y, g->gpos.z, (unsigned long long)off, b->index);
}

__attribute__((noinline)) static void dev_store(const char *p, uint64_t n) {
	Group *g = grp;
	emu_dispatch *d = g->d;
	for (uint32_t i = 0; i < d->nwbuf; i++) {
		const emu_wbuf *b = &d->wbuf[i];
		uint64_t off = (uint64_t)(p - b->base);
		if (off >= b->len)
			continue;
		uint64_t mine = (uint64_t)d->serial << 32 | (g->index + 1);
		uint64_t *sh = b->shadow + off / EMU_RACE_GRAIN, *end = b->shadow + (off + n + EMU_RACE_GRAIN - 1) / EMU_RACE_GRAIN;
		for (; sh < end; sh++) {
			uint64_t old = __atomic_load_n(sh, __ATOMIC_RELAXED);
			while (old != mine) {
				if (old >> 32 == d->serial)
					dev_race(b, (uint64_t)(sh - b->shadow) * EMU_RACE_GRAIN, (uint32_t)old);
				if (__atomic_compare_exchange_n(sh, &old, mine, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
					break;
			}
		}
		return;
	}
}

} // namespace __emu

extern "C" __attribute__((used, always_inline)) inline void __emu_race_tg_ld(threadgroup const void *p, uint64_t n) {
	__emu::tg_access((const char *)p, n, false);
}
extern "C" __attribute__((used, always_inline)) inline void __emu_race_tg_st(threadgroup const void *p, uint64_t n) {
	__emu::tg_access((const char *)p, n, true);
}
extern "C" __attribute__((used, always_inline)) inline void __emu_race_dev_st(device const void *p, uint64_t n) {
	if (__emu::grp->d->race)
		__emu::dev_store((const char *)p, n);
}

namespace __emu {
// race_read and race_write report an access of n bytes at p in any address
// space to the race detector, for shim code that accesses memory through
// plain pointers (noas) to hand the detector a whole row at once.
inline void race_read(threadgroup const void *p, uint64_t n) { __emu_race_tg_ld(p, n); }
inline void race_read(device const void *, uint64_t) {}
inline void race_read(const void *, uint64_t) {}
inline void race_write(threadgroup const void *p, uint64_t n) { __emu_race_tg_st(p, n); }
inline void race_write(device const void *p, uint64_t n) { __emu_race_dev_st(p, n); }
inline void race_write(const void *, uint64_t) {}

// noas<T>::type is T without its device or threadgroup address space.
template <class T> struct noas {
	typedef T type;
};
template <class T> struct noas<threadgroup T> {
	typedef T type;
};
template <class T> struct noas<device T> {
	typedef T type;
};
template <class T> struct noas<const threadgroup T> {
	typedef const T type;
};
template <class T> struct noas<const device T> {
	typedef const T type;
};
} // namespace __emu

// ---- The metal namespace ------------------------------------------------------

namespace metal {

enum class mem_flags : unsigned { mem_none = 0, mem_device = 1, mem_threadgroup = 2, mem_texture = 4 };
inline constexpr mem_flags operator|(mem_flags a, mem_flags b) { return mem_flags((unsigned)a | (unsigned)b); }
constexpr mem_flags mem_none = mem_flags::mem_none;
constexpr mem_flags mem_device = mem_flags::mem_device;
constexpr mem_flags mem_threadgroup = mem_flags::mem_threadgroup;
constexpr mem_flags mem_texture = mem_flags::mem_texture;

inline void threadgroup_barrier(mem_flags f, const char *file = __builtin_FILE(), unsigned line = __builtin_LINE(), unsigned col = __builtin_COLUMN()) {
	__emu::barrier((unsigned)f, __emu::Site{file, line, col}, "threadgroup_barrier");
}
inline void simdgroup_barrier(mem_flags f, const char *file = __builtin_FILE(), unsigned line = __builtin_LINE(), unsigned col = __builtin_COLUMN()) {
	__emu::exchange(0, __emu::Site{file, line, col});
}

// ---- Math ----

using __emu::vec_t;

#define EMU_UNARY(name, expr)                                                  \
	inline float name(float x) { return expr; }                            \
	inline half name(half x) { return (half)name((float)x); }              \
	template <class V> inline vec_t<V> name(V v) {                         \
		V r;                                                           \
		for (int i = 0; i < __emu::vinfo<V>::n; i++)                   \
			r[i] = name(v[i]);                                     \
		return r;                                                      \
	}
EMU_UNARY(sqrt, __builtin_sqrtf(x))
EMU_UNARY(rsqrt, 1.0f / __builtin_sqrtf(x))
EMU_UNARY(exp, __builtin_expf(x))
EMU_UNARY(exp2, __builtin_exp2f(x))
EMU_UNARY(exp10, __builtin_powf(10.0f, x))
EMU_UNARY(log, __builtin_logf(x))
EMU_UNARY(log2, __builtin_log2f(x))
EMU_UNARY(log10, __builtin_log10f(x))
EMU_UNARY(sin, __builtin_sinf(x))
EMU_UNARY(cos, __builtin_cosf(x))
EMU_UNARY(tan, __builtin_tanf(x))
EMU_UNARY(asin, __builtin_asinf(x))
EMU_UNARY(acos, __builtin_acosf(x))
EMU_UNARY(atan, __builtin_atanf(x))
EMU_UNARY(sinh, __builtin_sinhf(x))
EMU_UNARY(cosh, __builtin_coshf(x))
EMU_UNARY(tanh, __builtin_tanhf(x))
EMU_UNARY(erf, __builtin_erff(x))
EMU_UNARY(floor, __builtin_floorf(x))
EMU_UNARY(ceil, __builtin_ceilf(x))
EMU_UNARY(round, __builtin_roundf(x))
EMU_UNARY(rint, __builtin_rintf(x))
EMU_UNARY(trunc, __builtin_truncf(x))
EMU_UNARY(fract, __builtin_fminf(x - __builtin_floorf(x), 0x1.fffffep-1f))
EMU_UNARY(fabs, __builtin_fabsf(x))
EMU_UNARY(saturate, __builtin_fminf(__builtin_fmaxf(x, 0.0f), 1.0f))
EMU_UNARY(sign, x > 0 ? 1.0f : x < 0 ? -1.0f : x)
#undef EMU_UNARY

#define EMU_BINARY(name, expr)                                                 \
	inline float name(float x, float y) { return expr; }                   \
	inline half name(half x, half y) { return (half)name((float)x, (float)y); } \
	template <class V> inline vec_t<V> name(V a, V b) {                    \
		V r;                                                           \
		for (int i = 0; i < __emu::vinfo<V>::n; i++)                   \
			r[i] = name(a[i], b[i]);                               \
		return r;                                                      \
	}
EMU_BINARY(pow, __builtin_powf(x, y))
EMU_BINARY(powr, __builtin_powf(x, y))
EMU_BINARY(atan2, __builtin_atan2f(x, y))
EMU_BINARY(fmod, __builtin_fmodf(x, y))
EMU_BINARY(fmin, __builtin_fminf(x, y))
EMU_BINARY(fmax, __builtin_fmaxf(x, y))
EMU_BINARY(copysign, __builtin_copysignf(x, y))
EMU_BINARY(step, y < x ? 0.0f : 1.0f)
#undef EMU_BINARY

inline float fma(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
inline half fma(half a, half b, half c) { return (half)__builtin_fmaf(a, b, c); }
template <class V> inline vec_t<V> fma(V a, V b, V c) {
	V r;
	for (int i = 0; i < __emu::vinfo<V>::n; i++)
		r[i] = fma(a[i], b[i], c[i]);
	return r;
}

// min, max and abs take any scalar or vector type; on floats they ignore a
// NaN operand as Metal's fmin and fmax do.
template <class T> inline T min(T a, T b) { return __builtin_elementwise_min(a, b); }
template <class T> inline T max(T a, T b) { return __builtin_elementwise_max(a, b); }
template <class T> inline T abs(T a) { return __builtin_elementwise_abs(a); }
template <class T, class S> inline T clamp(T x, S lo, S hi) { return min(max(x, (T)lo), (T)hi); }
template <class T, class S> inline T mix(T x, T y, S a) { return x + (y - x) * a; }
template <class T> inline T select(T a, T b, bool c) { return c ? b : a; }

template <class T> inline bool isnan(T x) { return __builtin_isnan(x); }
template <class T> inline bool isinf(T x) { return __builtin_isinf(x); }
template <class T> inline bool isfinite(T x) { return __builtin_isfinite(x); }
template <class T> inline bool signbit(T x) { return __builtin_signbit(x); }

template <class V> inline typename __emu::vinfo<V>::elem dot(V a, V b) {
	typename __emu::vinfo<V>::elem s = 0;
	for (int i = 0; i < __emu::vinfo<V>::n; i++)
		s += a[i] * b[i];
	return s;
}
template <class V> inline typename __emu::vinfo<vec_t<V>>::elem length(V a) { return sqrt(dot(a, a)); }
template <class V> inline vec_t<V> normalize(V a) { return a * rsqrt(dot(a, a)); }

inline uint popcount(uint x) { return __builtin_popcount(x); }
inline uint clz(uint x) { return x ? __builtin_clz(x) : 32; }
inline uint ctz(uint x) { return x ? __builtin_ctz(x) : 32; }
inline uint mulhi(uint a, uint b) { return (uint)(((unsigned long)a * b) >> 32); }
inline int mulhi(int a, int b) { return (int)(((long)a * b) >> 32); }

// fast:: and precise:: name the same functions: the emulator computes
// every function the same way under both.
namespace fast {
using metal::abs;
using metal::clamp;
using metal::cos;
using metal::exp;
using metal::exp2;
using metal::fabs;
using metal::floor;
using metal::fmax;
using metal::fmin;
using metal::log;
using metal::log2;
using metal::max;
using metal::min;
using metal::normalize;
using metal::pow;
using metal::powr;
using metal::rsqrt;
using metal::sin;
using metal::sqrt;
using metal::tanh;
using metal::length;
using metal::dot;
} // namespace fast
namespace precise = fast; // the same functions under both names

template <class T, class F> inline T as_type(F f) {
	static_assert(sizeof(T) == sizeof(F), "as_type: sizes differ");
	return __builtin_bit_cast(T, f);
}

// ---- SIMD-group functions ----

#define EMU_SITE const char *file = __builtin_FILE(), unsigned line = __builtin_LINE(), unsigned col = __builtin_COLUMN()
#define EMU_AT __emu::Site{file, line, col}

template <class T> inline T __lane(__emu::Simd *s, unsigned l) {
	T v;
	memcpy(&v, s->out[l], sizeof(T));
	return v;
}

template <class T> inline T simd_sum(T v, EMU_SITE) {
	__emu::Simd *s = __emu::exchange(v, EMU_AT);
	T r = 0;
	for (unsigned m = s->outmask; m; m &= m - 1)
		r += __lane<T>(s, __builtin_ctz(m));
	return r;
}
template <class T> inline T simd_product(T v, EMU_SITE) {
	__emu::Simd *s = __emu::exchange(v, EMU_AT);
	T r = 1;
	for (unsigned m = s->outmask; m; m &= m - 1)
		r *= __lane<T>(s, __builtin_ctz(m));
	return r;
}
template <class T> inline T simd_max(T v, EMU_SITE) {
	__emu::Simd *s = __emu::exchange(v, EMU_AT);
	T r = v;
	for (unsigned m = s->outmask; m; m &= m - 1)
		r = max(r, __lane<T>(s, __builtin_ctz(m)));
	return r;
}
template <class T> inline T simd_min(T v, EMU_SITE) {
	__emu::Simd *s = __emu::exchange(v, EMU_AT);
	T r = v;
	for (unsigned m = s->outmask; m; m &= m - 1)
		r = min(r, __lane<T>(s, __builtin_ctz(m)));
	return r;
}
template <class T> inline T simd_prefix_inclusive_sum(T v, EMU_SITE) {
	__emu::Simd *s = __emu::exchange(v, EMU_AT);
	T r = 0;
	for (unsigned m = s->outmask & (0xffffffffu >> (31 - __emu::cur->lane)); m; m &= m - 1)
		r += __lane<T>(s, __builtin_ctz(m));
	return r;
}
template <class T> inline T simd_prefix_exclusive_sum(T v, EMU_SITE) {
	__emu::Simd *s = __emu::exchange(v, EMU_AT);
	T r = 0;
	for (unsigned m = s->outmask & ((1u << __emu::cur->lane) - 1); m; m &= m - 1)
		r += __lane<T>(s, __builtin_ctz(m));
	return r;
}
template <class T> inline T simd_shuffle(T v, ushort lane, EMU_SITE) {
	__emu::Simd *s = __emu::exchange(v, EMU_AT);
	return __lane<T>(s, lane & 31);
}
template <class T> inline T simd_broadcast(T v, ushort lane, EMU_SITE) {
	__emu::Simd *s = __emu::exchange(v, EMU_AT);
	return __lane<T>(s, lane & 31);
}
template <class T> inline T simd_broadcast_first(T v, EMU_SITE) {
	__emu::Simd *s = __emu::exchange(v, EMU_AT);
	return __lane<T>(s, __builtin_ctz(s->outmask));
}
// simd_shuffle_down and simd_shuffle_up return the caller's own value where
// the source lane is outside the SIMD group.
template <class T> inline T simd_shuffle_down(T v, ushort delta, EMU_SITE) {
	__emu::Simd *s = __emu::exchange(v, EMU_AT);
	unsigned l = __emu::cur->lane + delta;
	return l < 32 ? __lane<T>(s, l) : v;
}
template <class T> inline T simd_shuffle_up(T v, ushort delta, EMU_SITE) {
	__emu::Simd *s = __emu::exchange(v, EMU_AT);
	unsigned l = __emu::cur->lane;
	return l >= delta ? __lane<T>(s, l - delta) : v;
}
template <class T> inline T simd_shuffle_xor(T v, ushort mask, EMU_SITE) {
	__emu::Simd *s = __emu::exchange(v, EMU_AT);
	return __lane<T>(s, (__emu::cur->lane ^ mask) & 31);
}
inline bool simd_all(bool v, EMU_SITE) {
	__emu::Simd *s = __emu::exchange(v, EMU_AT);
	for (unsigned m = s->outmask; m; m &= m - 1)
		if (!__lane<bool>(s, __builtin_ctz(m)))
			return false;
	return true;
}
inline bool simd_any(bool v, EMU_SITE) {
	__emu::Simd *s = __emu::exchange(v, EMU_AT);
	for (unsigned m = s->outmask; m; m &= m - 1)
		if (__lane<bool>(s, __builtin_ctz(m)))
			return true;
	return false;
}
inline bool simd_is_first(EMU_SITE) {
	__emu::Simd *s = __emu::exchange(0, EMU_AT);
	return __builtin_ctz(s->outmask) == __emu::cur->lane;
}

// ---- simdgroup_matrix ----
//
// A matrix names a slot of its SIMD group's matrix storage. Every lane
// allocates slots in the same order (Metal requires SIMD-group-uniform
// control flow around matrix operations), so lane i's k-th matrix is lane j's
// k-th matrix. Each operation that writes a matrix or memory runs once: the
// first lane to reach the n-th operation performs it, the others skip it.

namespace __mat {
// first counts an operation for lane t and says whether t performs it.
__attribute__((always_inline)) inline bool first(__emu::Thread *t) {
	if (++t->matops > t->simd->matdone) {
		t->simd->matdone = t->matops;
		return true;
	}
	return false;
}
inline int alloc(__emu::Thread *t) {
	unsigned long long m = t->mats;
	if (m == ~0ull)
		EMU_FAIL("more than %d live simdgroup matrices", (int)__emu::MAT_SLOTS);
	int s = __builtin_ctzll(~m);
	t->mats = m | (1ull << s);
	return s;
}
} // namespace __mat

template <class T, int Cols, int Rows> struct simdgroup_matrix {
	static_assert(Cols == 8 && Rows == 8, "only 8x8 simdgroup matrices are supported");
	static_assert(sizeof(T) <= 4, "simdgroup matrix element type");
	__emu::Thread *t; // the lane that owns this value (saves a TLS lookup per operation)
	int slot;
	T *data() const { return (T *)t->simd->mat[slot]; }
	bool first() const { return __mat::first(t); }
	simdgroup_matrix() : t(__emu::cur), slot(__mat::alloc(t)) {}
	simdgroup_matrix(const simdgroup_matrix &o) : t(__emu::cur), slot(__mat::alloc(t)) {
		if (first())
			memcpy(data(), o.data(), sizeof(T) * 64);
	}
	simdgroup_matrix &operator=(const simdgroup_matrix &o) {
		if (first() && slot != o.slot)
			memcpy(data(), o.data(), sizeof(T) * 64);
		return *this;
	}
	~simdgroup_matrix() { t->mats &= ~(1ull << slot); }
};
typedef simdgroup_matrix<float, 8, 8> simdgroup_float8x8;
typedef simdgroup_matrix<half, 8, 8> simdgroup_half8x8;

template <class T, int C, int R> inline simdgroup_matrix<T, C, R> make_filled_simdgroup_matrix(T v) {
	simdgroup_matrix<T, C, R> m;
	if (m.first()) {
		T *d = m.data();
		for (int i = 0; i < 64; i++)
			d[i] = v;
	}
	return m;
}

// simdgroup_load reads element (row r, column c) from
// src[(origin.y + r) * elements_per_row + origin.x + c], or with transpose
// the element (c, r) of that layout. The origin and transpose conventions are
// still to be confirmed on a GPU (seal-ttt doctor); kernels pass offset
// pointers and no transpose.
template <class T, int C, int R, class P>
__attribute__((noinline)) void __load(thread simdgroup_matrix<T, C, R> &m, const P *from, ulong elements_per_row, ulong2 origin, bool transpose) {
	T *d = m.data();
	from += origin.y * elements_per_row + origin.x;
	// The race detector sees eight rows of eight elements (or columns, for
	// transpose, which are rows of memory); the accesses themselves go
	// through a plain pointer, which is not instrumented.
	for (int r = 0; r < 8; r++)
		__emu::race_read(from + r * elements_per_row, 8 * sizeof(P));
	const typename __emu::noas<P>::type *src = (const typename __emu::noas<P>::type *)from;
	if (transpose) {
		for (int r = 0; r < 8; r++)
			for (int c = 0; c < 8; c++)
				d[r * 8 + c] = (T)src[c * elements_per_row + r];
		return;
	}
	for (int r = 0; r < 8; r++)
		for (int c = 0; c < 8; c++)
			d[r * 8 + c] = (T)src[r * elements_per_row + c];
}
// The lanes that skip an operation only count it: the check is inlined,
// the work is not.
template <class T, int C, int R, class P>
__attribute__((always_inline)) inline void simdgroup_load(thread simdgroup_matrix<T, C, R> &m, const P *src, ulong elements_per_row = C,
                                                          ulong2 origin = ulong2(0, 0), bool transpose = false) {
	if (m.first())
		__load(m, src, elements_per_row, origin, transpose);
}
template <class T, int C, int R, class P>
__attribute__((noinline)) void __store(thread const simdgroup_matrix<T, C, R> &m, P *to, ulong elements_per_row, ulong2 origin, bool transpose) {
	const T *d = m.data();
	to += origin.y * elements_per_row + origin.x;
	for (int r = 0; r < 8; r++)
		__emu::race_write(to + r * elements_per_row, 8 * sizeof(P));
	typename __emu::noas<P>::type *dst = (typename __emu::noas<P>::type *)to;
	if (transpose) {
		for (int r = 0; r < 8; r++)
			for (int c = 0; c < 8; c++)
				dst[c * elements_per_row + r] = (P)d[r * 8 + c];
		return;
	}
	for (int r = 0; r < 8; r++)
		for (int c = 0; c < 8; c++)
			dst[r * elements_per_row + c] = (P)d[r * 8 + c];
}

template <class T, int C, int R, class P>
__attribute__((always_inline)) inline void simdgroup_store(thread const simdgroup_matrix<T, C, R> &m, P *dst, ulong elements_per_row = C,
                                                           ulong2 origin = ulong2(0, 0), bool transpose = false) {
	if (m.first())
		__store(m, dst, elements_per_row, origin, transpose);
}

typedef float __f8 __attribute__((ext_vector_type(8)));

// simdgroup_multiply_accumulate sets d = a*b + c, accumulating in float.
template <class T, int C, int R>
__attribute__((noinline)) void __mma(thread simdgroup_matrix<T, C, R> &d, thread const simdgroup_matrix<T, C, R> &a,
                                     thread const simdgroup_matrix<T, C, R> &b, thread const simdgroup_matrix<T, C, R> &c) {
	const T *A = a.data(), *B = b.data(), *Cm = c.data();
	__f8 bk[8], out[8];
	for (int k = 0; k < 8; k++)
		for (int j = 0; j < 8; j++)
			bk[k][j] = (float)B[k * 8 + j];
	for (int r = 0; r < 8; r++) {
		__f8 acc;
		for (int j = 0; j < 8; j++)
			acc[j] = (float)Cm[r * 8 + j];
		for (int k = 0; k < 8; k++)
			acc += (float)A[r * 8 + k] * bk[k];
		out[r] = acc;
	}
	T *D = d.data();
	for (int r = 0; r < 8; r++)
		for (int j = 0; j < 8; j++)
			D[r * 8 + j] = (T)out[r][j];
}
template <class T, int C, int R>
__attribute__((always_inline)) inline void simdgroup_multiply_accumulate(thread simdgroup_matrix<T, C, R> &d, thread const simdgroup_matrix<T, C, R> &a,
                                                                         thread const simdgroup_matrix<T, C, R> &b,
                                                                         thread const simdgroup_matrix<T, C, R> &c) {
	if (d.first())
		__mma(d, a, b, c);
}
template <class T, int C, int R>
inline void simdgroup_multiply(thread simdgroup_matrix<T, C, R> &d, thread const simdgroup_matrix<T, C, R> &a,
                               thread const simdgroup_matrix<T, C, R> &b) {
	if (!d.first())
		return;
	const T *A = a.data(), *B = b.data();
	__f8 bk[8], out[8];
	for (int k = 0; k < 8; k++)
		for (int j = 0; j < 8; j++)
			bk[k][j] = (float)B[k * 8 + j];
	for (int r = 0; r < 8; r++) {
		__f8 acc = 0;
		for (int k = 0; k < 8; k++)
			acc += (float)A[r * 8 + k] * bk[k];
		out[r] = acc;
	}
	T *D = d.data();
	for (int r = 0; r < 8; r++)
		for (int j = 0; j < 8; j++)
			D[r * 8 + j] = (T)out[r][j];
}

// ---- Atomics (device and threadgroup memory) ----

enum memory_order { memory_order_relaxed };
template <class T> struct _atomic {
	typedef T value_type;
	T v;
};
typedef _atomic<int> atomic_int;
typedef _atomic<uint> atomic_uint;
typedef _atomic<float> atomic_float;

// The atomic functions take an atomic in any address space (A is, say,
// "device _atomic<float>") and use the generic builtins, which take float
// too. They are not instrumented: atomics never race.
#define EMU_ATOMIC_T                                                           \
	typedef typename __emu::noas<A>::type::value_type T;                   \
	volatile T *q = (volatile T *)&p->v
template <class A> inline auto atomic_load_explicit(const volatile A *p, memory_order) {
	EMU_ATOMIC_T;
	T r;
	__atomic_load(q, &r, __ATOMIC_RELAXED);
	return r;
}
template <class A, class U> inline void atomic_store_explicit(volatile A *p, U v, memory_order) {
	EMU_ATOMIC_T;
	T n = (T)v;
	__atomic_store(q, &n, __ATOMIC_RELAXED);
}
template <class A, class U> inline auto atomic_exchange_explicit(volatile A *p, U v, memory_order) {
	EMU_ATOMIC_T;
	T n = (T)v, r;
	__atomic_exchange(q, &n, &r, __ATOMIC_RELAXED);
	return r;
}
// update replaces *p by f(*p) atomically, unless f declines (returns
// false), and returns the old value.
template <class A, class F> inline auto __atomic_update(volatile A *p, F f) {
	EMU_ATOMIC_T;
	T old, n;
	__atomic_load(q, &old, __ATOMIC_RELAXED);
	while (f(old, n) && !__atomic_compare_exchange(q, &old, &n, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
	}
	return old;
}
template <class A, class U> inline auto atomic_fetch_add_explicit(volatile A *p, U v, memory_order) {
	return __atomic_update(p, [v](auto old, auto &n) { n = old + (decltype(old))v; return true; });
}
template <class A, class U> inline auto atomic_fetch_max_explicit(volatile A *p, U v, memory_order) {
	return __atomic_update(p, [v](auto old, auto &n) { n = (decltype(old))v; return old < n; });
}
template <class A, class U> inline auto atomic_fetch_min_explicit(volatile A *p, U v, memory_order) {
	return __atomic_update(p, [v](auto old, auto &n) { n = (decltype(old))v; return old > n; });
}
#undef EMU_ATOMIC_T

#undef EMU_SITE
#undef EMU_AT
} // namespace metal

#endif
