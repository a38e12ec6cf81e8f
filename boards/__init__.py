"""convc.boards"""
