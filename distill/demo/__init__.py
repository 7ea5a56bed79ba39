"""distill.demo"""
