// strict.h
