"""convc.sim"""
