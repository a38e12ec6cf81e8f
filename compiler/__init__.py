"""convc.compiler"""
