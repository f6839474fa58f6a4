"""Steps that read a Study, run models and write results back with provenance.

Modules here keep their top-level imports light (numpy, pandas); torch and other heavy
libraries are imported inside the functions that need them.
"""
