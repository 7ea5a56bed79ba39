"""distill.verify"""
