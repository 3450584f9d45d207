#!/usr/bin/env python3
# Prints the pinned tables of Tests/SwitchyardCoreTests/Balancing/MaglevTests.swift from scratch: an
# independent re-implementation of the weighted Maglev fill in MaglevTable.swift, hashing with the
# system libxxhash (Debian: libxxhash0). Run: python3 Scripts/maglev-crosscheck.py
import ctypes, struct
l=ctypes.CDLL('libxxhash.so.0'); l.XXH64.restype=ctypes.c_uint64; l.XXH64.argtypes=[ctypes.c_char_p,ctypes.c_size_t,ctypes.c_uint64]
h=lambda b,seed=0: l.XXH64(b,len(b),seed)
OFF=0x5357495443480001; SKIP=0x5357495443480002
def table(weights,M):
    bs=[]
    for i,w in enumerate(weights):
        k=h(f"10.0.{i//256}.{i%256}:80".encode())
        kb=struct.pack('<Q',k)
        bs.append(dict(i=i,k=k,w=w,pos=h(kb,OFF)%M,skip=h(kb,SKIP)%(M-1)+1,credit=0))
    bs.sort(key=lambda b:(b['k'],b['i'])); mw=max(weights)
    e=[-1]*M; n=0
    while True:
        for b in bs:
            b['credit']+=b['w']
            if b['credit']<mw: continue
            b['credit']-=mw
            while e[b['pos']]>=0: b['pos']=(b['pos']+b['skip'])%M
            e[b['pos']]=b['i']; b['pos']=(b['pos']+b['skip'])%M; n+=1
            if n==M: return e
print(table([1,1,1],13)); print(table([1,2,4],17))
