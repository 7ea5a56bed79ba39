"""distill.router"""
