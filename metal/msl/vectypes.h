// Scalar aliases and Metal's vector types (float2 … ulong4, vec<T, N>),
// shared by shim.h (compiling kernels) and strict.h (checking them). The
// includer defines half first: _Float16 in C++, OpenCL's own half in the check.
#pragma once

typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;
typedef __SIZE_TYPE__ size_t;
typedef __PTRDIFF_TYPE__ ptrdiff_t;

#define EMU_VEC(T, name)                                       \
	typedef T name##2 __attribute__((ext_vector_type(2))); \
	typedef T name##3 __attribute__((ext_vector_type(3))); \
	typedef T name##4 __attribute__((ext_vector_type(4)));
EMU_VEC(float, float)
EMU_VEC(half, half)
EMU_VEC(int, int)
EMU_VEC(uint, uint)
EMU_VEC(short, short)
EMU_VEC(ushort, ushort)
EMU_VEC(char, char)
EMU_VEC(uchar, uchar)
EMU_VEC(long, long)
EMU_VEC(ulong, ulong)
#undef EMU_VEC
template <class T, int N> using vec = T __attribute__((ext_vector_type(N)));
