"""distill.students"""
