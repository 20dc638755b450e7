// strict.h: declarations of the Metal standard library subset (SUBSET.md)
// for the strict shader check, which compiles kernels as C++ for OpenCL
// 2021 with the address spaces mapped: device = __global, constant =
// __constant, threadgroup = __local, thread = __private. The generic address
// space is switched off, so an unqualified pointer is a thread pointer, as in
// Metal. Nothing here runs: it only has to type-check kernels.

#pragma OPENCL EXTENSION cl_khr_fp16 : enable

#include "vectypes.h"

// Metal's vector constructors take any mix of scalars and vectors (and
// convert); C-style casts between vector types stay errors, as OpenCL has
// them, since clang's C++ would compile them as bit casts.
template <class V, class... A> V __emu_make(A... a);
#define float2(...) __emu_make<float2>(__VA_ARGS__)
#define float3(...) __emu_make<float3>(__VA_ARGS__)
#define float4(...) __emu_make<float4>(__VA_ARGS__)
#define half2(...) __emu_make<half2>(__VA_ARGS__)
#define half3(...) __emu_make<half3>(__VA_ARGS__)
#define half4(...) __emu_make<half4>(__VA_ARGS__)
#define int2(...) __emu_make<int2>(__VA_ARGS__)
#define int3(...) __emu_make<int3>(__VA_ARGS__)
#define int4(...) __emu_make<int4>(__VA_ARGS__)
#define uint2(...) __emu_make<uint2>(__VA_ARGS__)
#define uint3(...) __emu_make<uint3>(__VA_ARGS__)
#define uint4(...) __emu_make<uint4>(__VA_ARGS__)
#define short2(...) __emu_make<short2>(__VA_ARGS__)
#define short4(...) __emu_make<short4>(__VA_ARGS__)
#define ushort2(...) __emu_make<ushort2>(__VA_ARGS__)
#define ushort3(...) __emu_make<ushort3>(__VA_ARGS__)
#define ushort4(...) __emu_make<ushort4>(__VA_ARGS__)
#define uchar4(...) __emu_make<uchar4>(__VA_ARGS__)
#define ulong2(...) __emu_make<ulong2>(__VA_ARGS__)

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

__local void *__emu_tg_alloc(int id, unsigned size, unsigned align, const __constant char *what);

namespace metal {

enum class mem_flags : unsigned { mem_none = 0, mem_device = 1, mem_threadgroup = 2, mem_texture = 4 };
mem_flags operator|(mem_flags a, mem_flags b);
void threadgroup_barrier(mem_flags f);
void simdgroup_barrier(mem_flags f);

// Math: any scalar or vector type.
#define EMU_F1(name) template <class T> T name(T x);
#define EMU_F2(name) template <class T> T name(T x, T y);
EMU_F1(sqrt)
EMU_F1(rsqrt)
EMU_F1(exp)
EMU_F1(exp2)
EMU_F1(exp10)
EMU_F1(log)
EMU_F1(log2)
EMU_F1(log10)
EMU_F1(sin)
EMU_F1(cos)
EMU_F1(tan)
EMU_F1(asin)
EMU_F1(acos)
EMU_F1(atan)
EMU_F1(sinh)
EMU_F1(cosh)
EMU_F1(tanh)
EMU_F1(erf)
EMU_F1(floor)
EMU_F1(ceil)
EMU_F1(round)
EMU_F1(rint)
EMU_F1(trunc)
EMU_F1(fract)
EMU_F1(fabs)
EMU_F1(abs)
EMU_F1(saturate)
EMU_F1(sign)
EMU_F1(normalize)
EMU_F2(pow)
EMU_F2(powr)
EMU_F2(atan2)
EMU_F2(fmod)
EMU_F2(fmin)
EMU_F2(fmax)
EMU_F2(min)
EMU_F2(max)
EMU_F2(copysign)
EMU_F2(step)
#undef EMU_F1
#undef EMU_F2
template <class T> T fma(T a, T b, T c);
template <class T, class S> T clamp(T x, S lo, S hi);
template <class T, class S> T mix(T x, T y, S a);
template <class T> T select(T a, T b, bool c);
template <class T> bool isnan(T x);
template <class T> bool isinf(T x);
template <class T> bool isfinite(T x);
template <class T> bool signbit(T x);
template <class V> auto dot(V a, V b) -> decltype(a.x);
template <class V> auto length(V a) -> decltype(a.x);
uint popcount(uint x);
uint clz(uint x);
uint ctz(uint x);
template <class T> T mulhi(T a, T b);
template <class T, class F> T as_type(F f);

namespace fast {
using metal::abs;
using metal::clamp;
using metal::cos;
using metal::dot;
using metal::exp;
using metal::exp2;
using metal::fabs;
using metal::floor;
using metal::fmax;
using metal::fmin;
using metal::length;
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
} // namespace fast
namespace precise {
using namespace fast;
}

// SIMD-group functions.
template <class T> T simd_sum(T v);
template <class T> T simd_product(T v);
template <class T> T simd_max(T v);
template <class T> T simd_min(T v);
template <class T> T simd_prefix_inclusive_sum(T v);
template <class T> T simd_prefix_exclusive_sum(T v);
template <class T> T simd_shuffle(T v, ushort lane);
template <class T> T simd_broadcast(T v, ushort lane);
template <class T> T simd_broadcast_first(T v);
template <class T> T simd_shuffle_down(T v, ushort delta);
template <class T> T simd_shuffle_up(T v, ushort delta);
template <class T> T simd_shuffle_xor(T v, ushort mask);
bool simd_all(bool v);
bool simd_any(bool v);
bool simd_is_first();

// simdgroup matrices live in thread memory; loads and stores take device
// or threadgroup pointers only.
template <class T, int Cols, int Rows> struct simdgroup_matrix {
	T unused;
	simdgroup_matrix() __private;
	simdgroup_matrix(const __private simdgroup_matrix &o) __private;
	__private simdgroup_matrix &operator=(simdgroup_matrix o) __private;
};
typedef simdgroup_matrix<float, 8, 8> simdgroup_float8x8;
typedef simdgroup_matrix<half, 8, 8> simdgroup_half8x8;
template <class T, int C, int R> simdgroup_matrix<T, C, R> make_filled_simdgroup_matrix(T v);
template <class T, int C, int R>
void simdgroup_load(__private simdgroup_matrix<T, C, R> &m, const __local T *src, ulong elements_per_row = C,
                    ulong2 origin = ulong2(0, 0), bool transpose = false);
template <class T, int C, int R>
void simdgroup_load(__private simdgroup_matrix<T, C, R> &m, const __global T *src, ulong elements_per_row = C,
                    ulong2 origin = ulong2(0, 0), bool transpose = false);
template <class T, int C, int R>
void simdgroup_store(const __private simdgroup_matrix<T, C, R> &m, __local T *dst, ulong elements_per_row = C,
                     ulong2 origin = ulong2(0, 0), bool transpose = false);
template <class T, int C, int R>
void simdgroup_store(const __private simdgroup_matrix<T, C, R> &m, __global T *dst, ulong elements_per_row = C,
                     ulong2 origin = ulong2(0, 0), bool transpose = false);
template <class T, int C, int R>
void simdgroup_multiply_accumulate(__private simdgroup_matrix<T, C, R> &d, const __private simdgroup_matrix<T, C, R> &a,
                                   const __private simdgroup_matrix<T, C, R> &b, const __private simdgroup_matrix<T, C, R> &c);
template <class T, int C, int R>
void simdgroup_multiply(__private simdgroup_matrix<T, C, R> &d, const __private simdgroup_matrix<T, C, R> &a,
                        const __private simdgroup_matrix<T, C, R> &b);

// Atomics in device or threadgroup memory.
enum memory_order { memory_order_relaxed };
template <class T> struct _atomic {
	T v;
};
typedef _atomic<int> atomic_int;
typedef _atomic<uint> atomic_uint;
typedef _atomic<float> atomic_float;
#define EMU_ATOMIC(name)                                                                    \
	template <class T, class U> T name(volatile __global _atomic<T> *p, U v, memory_order); \
	template <class T, class U> T name(volatile __local _atomic<T> *p, U v, memory_order);
EMU_ATOMIC(atomic_exchange_explicit)
EMU_ATOMIC(atomic_fetch_add_explicit)
EMU_ATOMIC(atomic_fetch_max_explicit)
EMU_ATOMIC(atomic_fetch_min_explicit)
#undef EMU_ATOMIC
template <class T> T atomic_load_explicit(const volatile __global _atomic<T> *p, memory_order);
template <class T> T atomic_load_explicit(const volatile __local _atomic<T> *p, memory_order);
template <class T, class U> void atomic_store_explicit(volatile __global _atomic<T> *p, U v, memory_order);
template <class T, class U> void atomic_store_explicit(volatile __local _atomic<T> *p, U v, memory_order);

} // namespace metal
