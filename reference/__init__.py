"""convc.reference"""
