"""Stored media (profile pictures, message media) behind one small protocol.

Two stores: the local directory `<data-dir>/media` (one machine) and content-addressed
blobs in the mirror's database, which every node of a cluster reads (store.py).
"""
